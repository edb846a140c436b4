"""A draft of the service a create request would make, for the create form's jobspec preview.

The same steps as creating it (the cross-field rules, the topology, the group and its
tasks) but nothing is written; placement then renders the draft as it would the real one.
"""

from __future__ import annotations

from dataclasses import replace

from bridge.domain.engines import engine_from_image
from bridge.domain.models import TaskGroup
from bridge.domain.specs import TaskGroupSpec
from bridge.domain.topology import TopologyError, plan_topology
from bridge.errors import ValidationFailed
from bridge.services.context import Actor
from bridge.services.task_groups import _new_group, _new_tasks


def draft_task_group(spec: TaskGroupSpec, actor: Actor) -> TaskGroup:
    try:
        topo = plan_topology(spec.parallelism, spec.gpu_required, spec.world_size)
    except TopologyError as exc:
        raise ValidationFailed(str(exc), details={"field": exc.field}) from exc
    engine = spec.engine or engine_from_image(spec.image)
    group = _new_group(spec, topo, engine, actor)
    return replace(group, tasks=_new_tasks(group, topo))
