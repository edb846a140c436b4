"""The Placer: turns a stored TaskGroup into a Nomad job, registers it, purges it.

Decisions made here, before Nomad places (each with its reason):
vendor (the requested GPU type, else NVIDIA when the engine runs there), engine (the
requested one, else the vendor's chain, skipping engines no candidate node can run), VRAM
per GPU, and the model mount.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from bridge.domain.engines import (
    ENGINES,
    LaunchInput,
    build_launch,
    choose_engine,
    parse_cc,
    why_engine_cannot_run,
)
from bridge.domain.models import Engine, GpuVendor, TaskGroup
from bridge.domain.status import TaskGroupStatus
from bridge.errors import (
    NomadConflict,
    NomadRejected,
    NomadUnavailable,
    NotFound,
    ValidationFailed,
)
from bridge.nomad.client import NomadClient
from bridge.nomad.jobjson import job_json
from bridge.nomad.jobspec import JobspecContext, Mount, job_id_for, render
from bridge.placement.model_paths import check_model_path
from bridge.placement.nomad.job import Placement, build_context
from bridge.placement.shared import default_vendor
from bridge.placement.sharing import gpu_ask, scanned_estimate
from bridge.settings import BridgeSettings, load_limits
from bridge.storage import nodes as node_rows
from bridge.storage import placement as rows
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Database

log = logging.getLogger(__name__)
MODEL_DIR = "/model"


@dataclass(frozen=True, slots=True)
class Rendered:
    group: TaskGroup
    context: JobspecContext
    engine: Engine
    vram_note: str

    @property
    def hcl(self) -> str:
        """The job as HCL, for people (the render endpoint); Nomad is sent ``job``."""
        return render(self.context)

    @property
    def job(self) -> dict[str, Any]:
        """The same job as Nomad's API JSON: registered as is, no parse round trip."""
        return job_json(self.context)


class NodeInventory:
    """Nomad's nodes, cached briefly: which vendors and compute capabilities exist."""

    def __init__(self, nomad: NomadClient | None, ttl_seconds: float = 30.0) -> None:
        self._nomad = nomad
        self._ttl = ttl_seconds
        self._at = -math.inf
        self._nodes: list[dict[str, Any]] = []

    async def capabilities(self, vendor: GpuVendor) -> list[tuple[int, int] | None]:
        if self._nomad is None:
            return []  # no cluster to look at: the chain's first engine
        if time.monotonic() - self._at > self._ttl:
            self._nodes = await self._full_nodes(self._nomad)
            self._at = time.monotonic()
        found = []
        for node in self._nodes:
            meta = node.get("Meta") or {}
            if meta.get("heteroflow.gpu.vendor") == vendor.value:
                found.append(parse_cc(meta.get("heteroflow.gpu.cc")))
        return found

    @staticmethod
    async def _full_nodes(nomad: NomadClient) -> list[dict[str, Any]]:
        # Node list stubs carry no Meta, where the agent publishes compute capability.
        stubs = [n for n in await nomad.nodes() if n.get("Status") == "ready"]
        gate = asyncio.Semaphore(16)

        async def one(node_id: str) -> dict[str, Any]:
            async with gate:
                return await nomad.node(node_id)

        return list(await asyncio.gather(*(one(n["ID"]) for n in stubs)))


class Placer:
    def __init__(
        self, db: Database, nomad: NomadClient | None, settings: BridgeSettings
    ) -> None:
        self.db = db
        self.nomad = nomad
        self.settings = settings
        self.inventory = NodeInventory(nomad)

    async def render(self, group_id: str, count: int | None = None) -> Rendered:
        async with self.db.transaction() as conn:
            group = await group_rows.get_task_group(conn, group_id)
            if group is None:
                raise NotFound(f"no task group {group_id}", details={"id": group_id})
            version = await rows.route_version(conn, group_id)
        return await self.render_group(group, version, count)

    async def render_group(self, group: TaskGroup, version: str,
                           count: int | None = None) -> Rendered:
        """Render a group as given, stored or not (the create form previews a draft)."""
        check_model_path(group.model_path, self.settings.model_roots)
        placement, engine = await self._decide(group)
        context = build_context(
            group, placement, version=version, namespace=self.settings.nomad_namespace,
            region=self.settings.nomad_region, datacenters=self.settings.datacenters,
            count=len(group.tasks) if count is None else count, load=load_limits(self.settings),
        )
        return Rendered(group, context, engine, placement.vram_note)

    @property
    def cluster(self) -> NomadClient:
        if self.nomad is None:
            raise NomadUnavailable("no Nomad cluster is configured (set NOMAD_ADDR)")
        return self.nomad

    async def plan(self, group_id: str) -> dict[str, Any]:
        rendered = await self.render(group_id)
        return await self.cluster.plan(rendered.job)

    async def place(self, group_id: str) -> None:
        """Register the group's job (check-and-set) and record it; failures become reasons."""
        try:
            rendered = await self.render(group_id)
        except ValidationFailed as exc:
            await self._fail(group_id, exc.message)
            return
        group = rendered.group
        modify_index = group.job_modify_index
        current = await self.cluster.job(job_id_for(group)) if modify_index is not None else None
        if modify_index is not None and current is None:
            modify_index = None  # the job vanished from Nomad: register it as new
        elif current is not None and (current.get("Meta") or {}).get(
                "hf_task_group_id") == group.id:
            # Ours, moved on since we recorded it (stopped by us, scaled through Nomad's API):
            # this registration is meant to replace what is there now.
            modify_index = int(current.get("JobModifyIndex") or modify_index or 0)
        try:
            job = rendered.job
            # Counts set through the scale API survive a re-registration.
            result = await self.cluster.register(job, modify_index=modify_index,
                                                 preserve_counts=modify_index is not None)
            index = int(result.get("JobModifyIndex") or 0)
        except NomadUnavailable as exc:
            await self._note(group_id, f"Nomad is unreachable ({exc.message}); "
                                       "registration is retried")
            raise
        except NomadRejected as exc:
            await self._fail(group_id, f"Nomad refused the job: {exc.details.get('nomad_message')}")
            return
        except NomadConflict:
            adopted = await self._adopt(group)
            if adopted is None:
                return
            index = adopted
        async with self.db.transaction() as conn:
            await rows.record_registration(conn, group_id, job_id=job_id_for(group),
                                           modify_index=index, engine=rendered.engine.value)
        log.info("job registered", extra={"task_group_id": group_id, "job": job_id_for(group),
                                          "engine": rendered.engine.value})

    async def replace_count(self, group_id: str, count: int) -> None:
        """Register the job again with ``count`` replicas: a new version, which cancels a
        deployment that cannot progress ("Cancelled due to newer version of job")."""
        rendered = await self.render(group_id, count=count)
        job = await self.cluster.parse(rendered.hcl)
        current = await self.cluster.job(job_id_for(rendered.group))
        result = await self.cluster.register(
            job, modify_index=int((current or {}).get("JobModifyIndex") or 0),
            preserve_counts=False)
        async with self.db.transaction() as conn:
            await rows.record_registration(conn, group_id, job_id=job_id_for(rendered.group),
                                           modify_index=int(result.get("JobModifyIndex") or 0),
                                           engine=rendered.engine.value)

    async def purge(self, job_id: str) -> None:
        await self.cluster.deregister(job_id, purge=True)

    async def _adopt(self, group: TaskGroup) -> int | None:
        """Check-and-set said the job exists: ours (a registration whose answer we lost) is
        adopted; someone else's job of the same ID is a conflict an operator must solve."""
        existing = await self.cluster.job(job_id_for(group))
        if existing and (existing.get("Meta") or {}).get("hf_task_group_id") == group.id:
            return int(existing.get("JobModifyIndex") or 0)
        if existing is None:
            return None  # gone meanwhile; the reconciler registers it again
        await self._fail(group.id, f"a Nomad job named {job_id_for(group)} already exists and "
                                   "HeteroFlow does not manage it; rename the service or remove "
                                   "that job")
        return None

    async def _decide(self, group: TaskGroup) -> tuple[Placement, Engine]:
        cpu_only = group.gpu_required == 0
        requested = group.engine
        vendor: GpuVendor | None = None
        if not cpu_only:
            vendor = group.gpu_type or default_vendor(requested)
        if requested is None:
            if vendor is None:
                requested = Engine.LLAMACPP
                note = "llamacpp: CPU only"
            else:
                requested, note = choose_engine(vendor, await self.inventory.capabilities(vendor))
            log.info("engine chosen", extra={"task_group_id": group.id, "why": note})
        reason = why_engine_cannot_run(requested, vendor, cpu_only=cpu_only)
        if reason:
            raise ValidationFailed(reason, details={"field": "engine"})
        spec = ENGINES[requested]
        gpus = group.gpu_required
        ask = gpu_ask(group, gpus, await self._scanned(group))
        model_in, mount = _mount(group.model_path)
        launch = build_launch(requested, LaunchInput(
            model_path=model_in, served_name=group.model_name, port=group.ports[0].container,
            gpus=max(1, gpus), sleep=group.idle_timeout_minutes > 0 and spec.sleep_api is not None,
            cpu_only=cpu_only), group.command)
        # The version's own engine arguments and environment (domain/versions.py) last.
        launch = replace(launch, args=(*launch.args, *group.engine_args),
                         env={**launch.env, **group.env})
        placement = Placement(
            launch=launch, vendor=vendor, gpus_per_task=ask.gpus, vram_per_gpu_mb=ask.need_mib,
            vram_note=ask.note, device_type=ask.device_type, isolated=ask.isolated,
            engine=requested.value, model_in_container=model_in,
            model_mount=mount,
            min_compute_capability=spec.min_compute_capability if vendor is GpuVendor.NVIDIA
            else None,
        )
        return placement, requested

    async def _scanned(self, group: TaskGroup) -> tuple[int, str] | None:
        """The agents' VRAM estimate of the model, when no number was given (issue 13's
        "the estimate drives placement")."""
        if group.estimated_gpu_memory_mb is not None or group.gpu_required == 0 \
                or self.db is None:  # rendering without a database: the jobspec goldens
            return None
        async with self.db.transaction() as conn:
            return scanned_estimate(group.model_path, await node_rows.list_nodes(conn))

    async def _note(self, group_id: str, reason: str) -> None:
        async with self.db.transaction() as conn:
            await rows.set_group_reason(conn, group_id, reason)

    async def _fail(self, group_id: str, reason: str) -> None:
        log.warning("placement refused", extra={"task_group_id": group_id, "reason": reason})
        async with self.db.transaction() as conn:
            await rows.set_group_reason(conn, group_id, reason, status=TaskGroupStatus.FAILED)


def _mount(model_path: str) -> tuple[str, Mount]:
    """A GGUF file is mounted as /model/<file>; a model folder as /model."""
    pure = PurePosixPath(model_path)
    if pure.suffix.lower() == ".gguf":
        target = f"{MODEL_DIR}/{pure.name}"
        return target, Mount(source=model_path, target=target)
    return MODEL_DIR, Mount(source=model_path, target=MODEL_DIR)

