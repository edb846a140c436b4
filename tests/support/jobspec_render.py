"""A task group rendered to a Nomad jobspec by the bridge's own placement and template,
for the jobspec goldens and for the Nomad client's tests against the double."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.domain.topology import Parallelism
from bridge.nomad.jobspec import JobspecContext, render
from bridge.placement.nomad.job import build_context
from bridge.placement.nomad.placer import Placer
from bridge.settings import BridgeSettings
from heteroflow_contracts.load import LoadLimits
from tests.support.factories import make_task_group

GID = "tg-1795602254106145117-df16"


async def rendered(name: str = "qwen", version: str = "v1", load: LoadLimits | None = None,
                   **over: Any) -> str:
    return render(await rendered_context(name, version, load, **over))


async def rendered_context(name: str = "qwen", version: str = "v1",
                           load: LoadLimits | None = None, **over: Any) -> JobspecContext:
    group = make_task_group(id=GID, name=name, **over)
    count = {Parallelism.SPLIT: group.world_size}.get(group.parallelism, 1)
    placer = Placer(None, None, BridgeSettings(model_roots=(Path("/models"),)))  # type: ignore[arg-type]
    placement, _ = await placer._decide(group)
    return build_context(group, placement, version=version, namespace="default",
                         region=None, datacenters=("dc1",), count=count, load=load)
