"""BridgeRuntime: what one bridge worker holds while it serves, typed, in ``app.ctx.bridge``.

Built when the app is created (settings, secrets, token cache), opened before the server
starts (database pool, agent and Nomad clients, placement), its background loops started
once the server listens and stopped before it closes. Every loop is in ``loops``:

| loop              | runs on                                   | how often                    |
|-------------------|-------------------------------------------|------------------------------|
| offline-nodes     | every replica                             | node_offline_seconds / 6     |
| nomad-reconciler  | one replica at a time (advisory lock);    | Nomad's event stream, and a  |
|                   | its registration workers on every replica | resync every resync seconds  |
| local-placement   | the one worker (several are refused)      | on submit, and a sweep every |
|                   |                                           | 5 s; rollouts every second   |
| nomad-deployments | every replica (writes are idempotent)     | 2 s, while a rollout is on   |
| policies          | one replica at a time (advisory lock)     | autoscale_interval_seconds   |
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.agents.client import AgentClient
from bridge.background import cancel_all
from bridge.crypto import SecretBox, load_or_create_key
from bridge.errors import BridgeError
from bridge.nomad.client import NomadClient
from bridge.placement.local.placement import LocalPlacement, this_machine
from bridge.placement.nomad.deployments import DeploymentFollower
from bridge.placement.nomad.loop import Reconciler
from bridge.placement.nomad.placement import NomadPlacement
from bridge.placement.nomad.placer import Placer
from bridge.placement.port import PlacementPort
from bridge.services.nodes import mark_offline_nodes
from bridge.services.policy_loop import PolicyLoop
from bridge.services.users import TokenCache
from bridge.settings import BridgeSettings, load_limits

# The api passes this handle to the services; it never runs storage code itself.
from bridge.storage.db import Database as Database

log = logging.getLogger("bridge")


@dataclass(frozen=True, slots=True)
class Loop:
    """One background loop: what it is, where and how often it runs, how to start it."""

    name: str
    runs_on: str
    every: str
    start: Callable[[], None]
    stop: Callable[[], Awaitable[None]]


class OfflineWatch:
    """Marks nodes offline once they miss heartbeats; checked several times per window."""

    def __init__(self, db: Database, after_seconds: int) -> None:
        self.db, self.after_seconds = db, after_seconds
        self.period = max(1.0, after_seconds / 6)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="offline-nodes")]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await mark_offline_nodes(self.db, self.after_seconds)
            except BridgeError as exc:
                log.warning("offline check failed", extra={"error": str(exc)})


class BridgeRuntime:
    def __init__(self, settings: BridgeSettings, database_url: str, version: str) -> None:
        self.settings = settings
        self.database_url = database_url
        self.version = version
        self.tokens = TokenCache()
        self.secrets = SecretBox(load_or_create_key(settings.secret_key,
                                                    settings.secret_key_file))
        self.nomad: NomadClient | None = None
        self.placement: PlacementPort | None = None  # None: placement is off
        self.reconciler: Reconciler | None = None  # with Nomad only
        self.deployments: DeploymentFollower | None = None  # with Nomad only
        self.local: LocalPlacement | None = None  # without Nomad, placement "auto"
        self.loops: list[Loop] = []
        # Set by open(), before the server takes requests.
        self.db: Database
        self.agents: AgentClient
        self.placer: Placer  # renders jobspecs even without Nomad (GET .../jobspec)

    async def open(self) -> None:
        settings = self.settings
        self.db = Database(self.database_url, min_size=settings.db_pool_min,
                           max_size=settings.db_pool_max)
        await self.db.open()
        self.agents = AgentClient()
        self.nomad = NomadClient(settings) if settings.nomad_addr else None
        self.placer = Placer(self.db, self.nomad, settings)
        if self.nomad is not None:
            self.reconciler = Reconciler(self.db, self.nomad, self.placer,
                                         resync_seconds=settings.reconcile_resync_seconds)
            self.placement = NomadPlacement(self.placer, self.reconciler)
            self.deployments = DeploymentFollower(self.db, self.nomad)
        elif settings.placement == "auto":
            # No Nomad: the bridge fits tasks on the GPUs its agents report and the agents
            # run the engines (on one machine: the agent `heteroflow up` starts beside it).
            self.local = LocalPlacement(self.db, self.agents, self.secrets,
                                        settings.local_model_roots,
                                        host=this_machine(load_limits(settings)))
            self.placement = self.local
        self.loops = background_loops(self)

    def start_loops(self) -> None:
        for loop in self.loops:
            loop.start()
        if self.reconciler is not None:
            log.info("placement on Nomad", extra={"nomad": self.settings.nomad_addr})

    async def stop_loops(self) -> None:
        for loop in reversed(self.loops):
            await loop.stop()

    async def close(self) -> None:
        if self.nomad is not None:
            await self.nomad.close()
        await self.agents.close()
        await self.db.close()


def background_loops(rt: BridgeRuntime) -> list[Loop]:
    """The loops this worker runs, in start order (see the table above)."""
    watch = OfflineWatch(rt.db, rt.settings.node_offline_seconds)
    loops = [Loop("offline-nodes", "every replica", f"{watch.period:g} s", watch.start,
                  watch.stop)]
    if rt.reconciler is not None:
        loops.append(Loop("nomad-reconciler",
                          "one replica at a time (advisory lock); registrations on every one",
                          f"event stream, resync every {rt.reconciler.resync_seconds:g} s",
                          rt.reconciler.start, rt.reconciler.stop))
    if rt.deployments is not None:
        loops.append(Loop("nomad-deployments", "every replica (idempotent writes)",
                          f"{rt.deployments.every_seconds:g} s", rt.deployments.start,
                          rt.deployments.stop))
    if rt.local is not None:
        loops.append(Loop("local-placement", "the one worker",
                          f"on submit, sweep every {rt.local.sweep_seconds:g} s",
                          rt.local.start, rt.local.stop))
    if rt.placement is not None:
        policies = PolicyLoop(rt.db, rt.placement, rt.agents, rt.secrets, rt.settings)
        loops.append(Loop("policies", "one replica at a time (advisory lock)",
                          f"{policies.interval:g} s", policies.start, policies.stop))
    return loops
