"""The Nomad job a service *would* render to, before it exists: the create form's preview.

The same steps as creating it (topology, the group and its tasks, the model-root check, the
engine and GPU decision, the template) but nothing is written, so the operator sees the
jobspec, or the reason it cannot be rendered, while still editing the form.
"""

from __future__ import annotations

from dataclasses import replace

from bridge.domain.engines import engine_from_image
from bridge.domain.specs import TaskGroupSpec
from bridge.domain.topology import TopologyError, plan_topology
from bridge.errors import ValidationFailed
from bridge.nomad.jobspec import build_context, render
from bridge.services.context import Actor
from bridge.services.model_paths import check_model_path
from bridge.services.placement import Placer, Rendered
from bridge.services.task_groups import _new_group, _new_tasks


async def preview_jobspec(placer: Placer, spec: TaskGroupSpec, actor: Actor) -> Rendered:
    try:
        topo = plan_topology(spec.parallelism, spec.gpu_required, spec.world_size)
    except TopologyError as exc:
        raise ValidationFailed(str(exc), details={"field": exc.field}) from exc
    engine = spec.engine or engine_from_image(spec.image)
    group = _new_group(spec, topo, engine, actor)
    group = replace(group, tasks=_new_tasks(group, topo))
    settings = placer.settings
    check_model_path(group.model_path, settings.model_roots)
    placement, chosen = await placer._decide(group)
    context = build_context(group, placement, version=spec.route.version,
                            namespace=settings.nomad_namespace, region=settings.nomad_region,
                            datacenters=settings.datacenters, count=len(group.tasks))
    return Rendered(group, render(context), chosen, placement.vram_note)
