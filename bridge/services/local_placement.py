"""Placement without Nomad (the one-machine default): the bridge fits tasks on the GPUs its
nodes' agents reported, and each node's agent runs the engines as processes.

    submit(group) -> place(): node + GPUs (first fit by free memory) -> task row scheduled
                              -> agent POST /v1/tasks -> the agent reports starting, running
    every few seconds: groups still waiting are tried again (a GPU freed, an agent came back)

All GPUs of a task are on one node (tensor parallel); split replicas take one GPU each.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import random
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.agents.client import AgentClient
from bridge.crypto import SecretBox
from bridge.domain.engines import (
    ENGINES,
    LaunchInput,
    NotRunnableHere,
    chain_for,
    local_launch,
)
from bridge.domain.local_fit import fit_gpus
from bridge.domain.models import Engine, GpuVendor, Node, Task, TaskGroup
from bridge.domain.specs import TaskGroupSpec
from bridge.domain.status import TaskGroupStatus, TaskStatus
from bridge.errors import AgentRefused, AgentUnavailable, BridgeError
from bridge.services.background import cancel_all
from bridge.services.model_paths import check_model_path
from bridge.services.task_ops import follow_group
from bridge.storage import nodes as node_rows
from bridge.storage import placement as rows
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Database

log = logging.getLogger(__name__)
T = TaskStatus
# Tasks holding their GPUs (a sleep that released GPU memory gives them back).
HOLDING = frozenset({T.SCHEDULED, T.STARTING, T.RUNNING, T.WAKING, T.SLEEPING, T.STOPPING})


class LocalPlacement:
    def __init__(self, db: Database, agents: AgentClient, box: SecretBox,
                 model_roots: tuple[Path, ...], *, sweep_seconds: float = 5.0) -> None:
        self.db, self.agents, self.box = db, agents, box
        self.model_roots = model_roots
        self.sweep_seconds = sweep_seconds
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
                    url, secret = await self._agent(task.node_id)
                    await self.agents.call(url, secret, "DELETE", f"/v1/tasks/{task.id}")
                except AgentRefused:
                    pass  # not running there any more
                except AgentUnavailable as exc:
                    # A node that is gone must not make its services undeletable; an agent
                    # that comes back stops engines no row knows (it reports them lost).
                    log.warning("agent unreachable while deleting", extra={
                        "task_id": task.id, "node_id": task.node_id, "error": exc.message})

    async def stop_task(self, group: TaskGroup, task: Task) -> None:
        if task.node_id:
            url, secret = await self._agent(task.node_id)
            with contextlib.suppress(AgentRefused):  # not running there any more
                await self.agents.call(url, secret, "DELETE", f"/v1/tasks/{task.id}")

    async def retry_task(self, group: TaskGroup, task: Task) -> None:
        self.submit(group.id)

    async def scale(self, group: TaskGroup, replicas: int) -> None:
        self.submit(group.id)  # removed tasks were stopped one by one before

    # ------------------------------------------------------------------ loop

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(), name="local-placement"),
                       asyncio.create_task(self._sweep(), name="local-sweep")]

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
        """Retry waiting groups; re-place tasks an agent no longer runs (it restarted)."""
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                for group_id in await self._waiting_groups():
                    self.submit(group_id)
            except Exception as exc:
                log.warning("local sweep failed", extra={"error": repr(exc)})

    async def _waiting_groups(self) -> list[str]:
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "SELECT DISTINCT t.group_id FROM tasks t JOIN task_groups g ON g.id = t.group_id"
                " WHERE t.status = 'pending' AND g.nomad_job_id IS NULL"
                " AND g.status IN ('pending', 'scheduling', 'running', 'sleeping')")
            waiting = [r["group_id"] for r in await cur.fetchall()]
            # A row placed a moment ago may not have reached its agent yet: not lost.
            cur = await conn.execute(
                "SELECT t.id, t.node_id, t.status,"
                " t.updated_at < now() - interval '30 seconds' AND t.status <> 'stopping'"
                " AS settled"
                " FROM tasks t JOIN task_groups g ON g.id = t.group_id"
                " WHERE g.nomad_job_id IS NULL AND t.status IN ('scheduled', 'starting',"
                " 'running', 'sleeping', 'waking', 'stopping') AND t.node_id IS NOT NULL")
            held = [(r["id"], r["node_id"], bool(r["settled"])) for r in await cur.fetchall()]
            nodes = [n.id for n in await node_rows.list_nodes(conn) if n.status == "online"]
        await self._reconcile_agents(nodes, held)
        return waiting

    async def _reconcile_agents(self, nodes: list[str],
                                held: list[tuple[str, str, bool]]) -> None:
        """Make each agent's engines and the task rows agree.

        A row whose agent does not run it (the agent restarted, the node was replaced) goes
        back to pending; an engine no row holds on that node (a start that raced a stop, a
        delete while the agent was away) is stopped, so nothing runs that nobody knows.
        """
        rows_by_node: dict[str, dict[str, bool]] = {n: {} for n in nodes}
        for task_id, node_id, settled in held:
            rows_by_node.setdefault(node_id, {})[task_id] = settled
        for node_id, rows_here in rows_by_node.items():
            try:
                url, secret = await self._agent(node_id)
                status = await self.agents.call(url, secret, "GET", "/v1/status")
            except (AgentUnavailable, AgentRefused):
                continue  # unknown is not lost: wait for the agent
            running = {t.get("task_id") for t in status.get("tasks", [])
                       if t.get("state") not in ("completed", "failed")}
            for task_id, settled in rows_here.items():
                if task_id not in running and settled:
                    await self._back_to_pending(task_id, "its node's agent no longer runs it; "
                                                         "placing it again")
            for task_id in running - set(rows_here):
                log.warning("stopping an engine no task row holds",
                            extra={"task_id": task_id, "node_id": node_id})
                with contextlib.suppress(AgentRefused, AgentUnavailable):
                    await self.agents.call(url, secret, "DELETE", f"/v1/tasks/{task_id}")

    # ------------------------------------------------------------------ placing

    async def place(self, group_id: str) -> None:
        async with self.db.transaction() as conn:
            group = await group_rows.get_task_group(conn, group_id)
            nodes = [n for n in await node_rows.list_nodes(conn) if n.status == "online"]
            busy = await self._busy(conn)
        if group is None or group.nomad_job_id:
            return
        waiting = [t for t in group.tasks if t.status is T.PENDING]
        for task in waiting:
            reason = await self._place_task(group, task, nodes, busy)
            if reason:
                await self._note(group, task, reason)

    async def _place_task(self, group: TaskGroup, task: Task, nodes: list[Node],
                          busy: dict[str, set[str]]) -> str:
        """Place one task; returns why it could not be placed ("" when it was)."""
        if not nodes:
            return "no node agent is online yet"
        reasons: list[str] = []
        for node in nodes:
            vendor = group.gpu_type.value if group.gpu_type else None
            fit = fit_gpus(node.gpus, busy.setdefault(node.id, set()), task.gpu_required,
                           _per_gpu(group, task.gpu_required), vendor)
            if not fit.ok:
                reasons.append(f"{node.name}: {fit.reason}")
                continue
            try:
                engine = _engine_for(group, node, fit.vendor)
                launch = local_launch(
                    engine, LaunchInput(
                        model_path=group.model_path, served_name=group.model_name,
                        port=_port(node, busy), gpus=max(1, task.gpu_required),
                        sleep=group.idle_timeout_minutes > 0, cpu_only=task.gpu_required == 0),
                    python=sys.executable, which=shutil.which, importable=_importable)
            except NotRunnableHere as exc:
                reasons.append(f"{node.name}: {exc}")
                continue
            port = int(launch.argv[launch.argv.index("--port") + 1])
            host = urlsplit(node.agent_url or "http://127.0.0.1").hostname or "127.0.0.1"
            await self._start(group, task, node, fit.gpu_ids, fit.vendor, engine, launch.argv,
                              launch.env, launch.health_path, f"{host}:{port}", port)
            busy[node.id].update(fit.gpu_ids)
            busy[node.id].add(f"port:{port}")
            return ""
        return "; ".join(reasons)

    async def _start(self, group: TaskGroup, task: Task, node: Node, gpu_ids: tuple[str, ...],
                     vendor: str | None, engine: Engine, argv: tuple[str, ...],
                     env: dict[str, str], health_path: str, address: str, port: int) -> None:
        async with self.db.transaction() as conn:
            if not await rows.update_task_if(
                    conn, task.id, T.PENDING.value, status=T.SCHEDULED.value,
                    status_reason=f"starting {engine.value} on {node.name}",
                    node_id=node.id, node_name=node.name, gpu_id=",".join(gpu_ids) or None,
                    address=address):
                return  # someone else moved it
            await rows.update_group_if(conn, group.id, TaskGroupStatus.PENDING.value,
                                       status=TaskGroupStatus.SCHEDULING.value,
                                       status_reason="starting on this machine")
            if group.engine is None:
                await conn.execute("UPDATE task_groups SET engine = %s WHERE id = %s",
                                   (engine.value, group.id))
            if group.health_check.path == "/health" and health_path != "/health":
                # The default check means "the engine is ready"; this engine says so at
                # another path, and the gateway must probe where it answers.
                await conn.execute(
                    "UPDATE inference_endpoints SET health_check = jsonb_set(health_check,"
                    " '{path}', to_jsonb(%s::text)) WHERE task_group_id = %s",
                    (health_path, group.id))
        key_env = _KEY_ENV.get(engine)
        if key_env:  # only the agent (which starts it) and the gateway know the key
            env = {**env, key_env: self.box.engine_key(task.id)}
        body: dict[str, Any] = {
            "task_id": task.id, "argv": list(argv), "env": env, "port": port,
            "gpu_vendor": vendor, "gpu_ids": list(gpu_ids),
            # a service keeps trying, backing off once the attempts are spent (Nomad
            # reschedules without end too), rather than failing until someone retries
            "restart": {"attempts": 2, "delay_seconds": 5.0, "mode": "delay"},
            "health_path": health_path, "engine": engine.value,
            "sleep_api": ENGINES[engine].sleep_api, "idle_timeout_minutes":
                group.idle_timeout_minutes,
        }
        try:
            url, secret = await self._agent(node.id)
            await self.agents.call(url, secret, "POST", "/v1/tasks", body)
        except (AgentUnavailable, AgentRefused) as exc:
            await self._back_to_pending(task.id, f"the agent on {node.name} did not start it: "
                                                 f"{exc.message}")
            return
        log.info("task started locally", extra={"task_id": task.id, "node": node.name,
                                               "gpus": list(gpu_ids), "engine": engine.value})

    async def _busy(self, conn: Any) -> dict[str, set[str]]:
        cur = await conn.execute(
            "SELECT node_id, gpu_id, address, status, gpu_released FROM tasks"
            " WHERE node_id IS NOT NULL AND status = ANY(%s)",
            ([s.value for s in HOLDING],))
        busy: dict[str, set[str]] = {}
        for r in await cur.fetchall():
            held = busy.setdefault(r["node_id"], set())
            if r["address"]:
                held.add("port:" + r["address"].rsplit(":", 1)[-1])
            if r["gpu_id"] and not (r["status"] == T.SLEEPING.value and r["gpu_released"]):
                held.update(r["gpu_id"].split(","))
        return busy

    async def _agent(self, node_id: str) -> tuple[str, str]:
        async with self.db.transaction() as conn:
            url, sealed = await node_rows.agent_endpoint(conn, node_id)
        if not url or not sealed:
            raise AgentUnavailable(f"node {node_id} has no reachable agent", details={})
        return url, self.box.open(sealed)

    async def _back_to_pending(self, task_id: str, reason: str) -> None:
        async with self.db.transaction() as conn:
            task = await group_rows.get_task(conn, task_id)
            if task is None or task.status in (T.PENDING, T.COMPLETED, T.FAILED):
                return
            await rows.update_task_if(conn, task_id, task.status.value, status=T.PENDING.value,
                                      status_reason=reason, node_id=None, node_name=None,
                                      gpu_id=None, address=None)
            await follow_group(conn, task.group_id)

    async def _note(self, group: TaskGroup, task: Task, reason: str) -> None:
        async with self.db.transaction() as conn:
            await rows.update_task_if(conn, task.id, T.PENDING.value, status_reason=reason)
            await rows.update_group_if(conn, group.id, group.status.value,
                                       status_reason=reason)


# Where each engine takes its API key: the environment, never argv, which every local user
# can read in /proc. Keyed engines refuse callers without it, so nothing on this machine
# reaches them around the gateway's keys and usage. (SGLang takes it on argv only.)
_KEY_ENV = {Engine.LLAMACPP: "API_KEY", Engine.VLLM: "VLLM_API_KEY"}


def _per_gpu(group: TaskGroup, gpus: int) -> int | None:
    if not gpus or group.estimated_gpu_memory_mb is None:
        return None
    return -(-group.estimated_gpu_memory_mb // gpus)


def _engine_for(group: TaskGroup, node: Node, vendor: str | None) -> Engine:
    if group.engine is not None:
        return group.engine
    if vendor is None:
        return Engine.LLAMACPP
    installed = set(node.engines)
    for engine in chain_for(GpuVendor(vendor)):
        if engine.value in installed:
            return engine
    return chain_for(GpuVendor(vendor))[-1]


def _port(node: Node, busy: dict[str, set[str]]) -> int:
    taken = busy.get(node.id, set())
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
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module.split(".")[0]) is not None
