"""Placement without Nomad (the one-machine default): the bridge fits tasks on the GPUs its
nodes' agents reported, and each node's agent runs the engines as processes.

    submit(group) -> place(): load (group, online nodes, GPUs and ports taken)
                              -> decide (first fit by free memory; pure, decide.py)
                              -> apply (task row scheduled, agent POST /v1/tasks)
                              -> the agent reports starting, running
    every few seconds, sweep(): load (waiting groups, placed rows, what each agent runs)
                              -> decide_agents -> apply (rows back to pending, stray
                              engines stopped), and the waiting groups are tried again
    every second, per rollout: load (group, its rollout, room for a surge)
                              -> decide_rollout (rollout.py) -> apply (new replicas, old
                              ones drained then stopped; rollout_apply.py)

All GPUs of a task are on one node (tensor parallel); split replicas take one GPU each.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import random
import shutil
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from bridge.agents.client import AgentClient
from bridge.background import cancel_all
from bridge.crypto import SecretBox
from bridge.domain.models import Node, Task, TaskGroup
from bridge.domain.specs import TaskGroupSpec
from bridge.domain.versions import VersionSpec
from bridge.errors import AgentRefused, AgentUnavailable, BridgeError
from bridge.placement.local.apply import LocalApply
from bridge.placement.local.decide import Host, Start, decide, decide_agents
from bridge.placement.local.rollout import Timing
from bridge.placement.local.rollout_apply import RolloutApply
from bridge.placement.model_paths import check_model_path
from bridge.placement.shared import HOLDING
from bridge.storage.db import Database
from heteroflow_contracts.load import LoadLimits

log = logging.getLogger(__name__)


class LocalPlacement:
    def __init__(self, db: Database, agents: AgentClient, box: SecretBox,
                 model_roots: tuple[Path, ...], *, sweep_seconds: float = 5.0,
                 host: Host | None = None, timing: Timing | None = None) -> None:
        self.apply = LocalApply(db, agents, box)
        self.model_roots = model_roots
        self.sweep_seconds = sweep_seconds
        self.host = host or this_machine()
        # settle: the gateway re-reads tasks every second and probes a new one at once;
        # drain: what an old replica already has is short chat turns, mostly.
        self.rollouts = RolloutApply(db, self.apply, self.host,
                                     timing or Timing(settle_s=3.0, drain_s=10.0), self.submit)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ PlacementPort

    def validate(self, spec: TaskGroupSpec) -> None:
        # The path may exist only on the node that runs it; an engine that cannot open it
        # fails to start, and its task says so with the engine's own words.
        check_model_path(spec.model_path, self.model_roots)

    def submit(self, group_id: str) -> None:
        self._queue.put_nowait(group_id)

    async def withdraw(self, group: TaskGroup) -> None:
        for task in group.tasks:
            if task.node_id and task.status in HOLDING:
                try:
                    await self.apply.stop_engine(task.node_id, task.id)
                except AgentUnavailable as exc:
                    # A node that is gone must not make its services undeletable; an agent
                    # that comes back stops engines no row knows (it reports them lost).
                    log.warning("agent unreachable while deleting", extra={
                        "task_id": task.id, "node_id": task.node_id, "error": exc.message})

    def check_stop(self, group: TaskGroup, task: Task) -> None:
        return None  # any one engine can end alone

    async def stop_task(self, group: TaskGroup, task: Task) -> bool:
        if task.node_id:
            await self.apply.stop_engine(task.node_id, task.id)
        return True  # the agent has ended it when it answered

    async def retry_task(self, group: TaskGroup, task: Task) -> None:
        self.submit(group.id)

    def ends_removed_ranks(self, group: TaskGroup) -> bool:
        return False

    async def scale(self, group: TaskGroup, replicas: int, reason: str | None = None) -> None:
        return None  # rows decide: removed ranks are stopped one by one, new ones placed

    async def rollout(self, group: TaskGroup) -> str:
        return ""  # local placement starts and stops engines at once; nothing rolls out

    def scaled(self, group: TaskGroup, replicas: int) -> None:
        if replicas > len(group.tasks):
            self.submit(group.id)

    def check_update(self, group: TaskGroup, spec: VersionSpec) -> None:
        check_model_path(spec.model_path, self.model_roots)

    def check_canary(self, canary: int) -> None:
        return None  # the rollout loop starts canaries and the gateway gives them a share

    def update(self, group_id: str) -> None:
        return None  # the rollout loop finds it within a second

    async def abandon(self, group: TaskGroup) -> None:
        return None  # the rollout loop reads the mark and rolls back

    # ------------------------------------------------------------------ loops

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name="local-placement"),
                       asyncio.create_task(self._sweep(), name="local-sweep"),
                       asyncio.create_task(self._roll(), name="local-rollouts")]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []

    async def _work(self) -> None:
        while True:
            group_id = await self._queue.get()
            try:
                await self.place(group_id)
            except Exception as exc:
                log.warning("local placement failed", extra={"task_group_id": group_id,
                                                             "error": repr(exc)})

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                for group_id in await self.sweep():
                    self.submit(group_id)
            except Exception as exc:
                log.warning("local sweep failed", extra={"error": repr(exc)})

    async def _roll(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                for group_id in await self.rollouts.groups():
                    await self.rollouts.tick(group_id)
            except Exception as exc:
                log.warning("local rollout failed", extra={"error": repr(exc)})

    # ------------------------------------------------------------------ load -> decide -> apply

    async def place(self, group_id: str) -> None:
        loaded = await self.apply.load_group(group_id)
        group = loaded.group
        if group is None or group.nomad_job_id:
            return
        for outcome in decide(group, loaded.nodes, loaded.busy, self.host):
            if isinstance(outcome, Start):
                await self.apply.start(group, outcome)
            else:
                await self.apply.wait(group, outcome)

    async def sweep(self) -> list[str]:
        """Make agents and rows agree (re-place tasks an agent no longer runs, it restarted;
        stop engines no row holds); returns the groups still waiting, to be tried again."""
        loaded = await self.apply.load_sweep()
        fixes = decide_agents(loaded.nodes, loaded.held, loaded.running)
        for task_id in fixes.back_to_pending:
            await self.apply.back_to_pending(task_id, "its node's agent no longer runs it; "
                                                      "placing it again")
        for node_id, task_id in fixes.strays:
            log.warning("stopping an engine no task row holds",
                        extra={"task_id": task_id, "node_id": node_id})
            with contextlib.suppress(AgentRefused, AgentUnavailable):
                await self.apply.stop_engine(node_id, task_id)
        return loaded.waiting


def this_machine(limits: LoadLimits | None = None) -> Host:
    """The host's real answers: installed binaries, importable modules, free ports."""
    return Host(python=sys.executable, which=shutil.which, importable=_importable,
                free_port=_free_port, limits=limits or LoadLimits())


def _free_port(node: Node, taken: set[str]) -> int:
    for _ in range(200):
        port = random.randint(20000, 32000)  # noqa: S311 - not a secret
        if f"port:{port}" not in taken and _free_here(port, node):
            return port
    raise BridgeError("no free port found for the engine")


def _free_here(port: int, node: Node) -> bool:
    """On a node that is this machine, make sure nothing listens there already."""
    host = urlsplit(node.agent_url or "").hostname
    if host not in ("127.0.0.1", "localhost"):
        return True  # the agent refuses a taken port; we then try another
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module.split(".")[0]) is not None
