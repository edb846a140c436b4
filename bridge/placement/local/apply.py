"""Load what local placement decides on (rows, online nodes, what agents run), and carry
out its decisions: guarded row writes, then the agent's call."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from bridge.agents.client import AgentClient
from bridge.agents.shapes import RestartPolicy, StartTask
from bridge.crypto import SecretBox
from bridge.domain.engines import ENGINES
from bridge.domain.models import Engine, Node, TaskGroup
from bridge.domain.status import TaskGroupStatus, TaskStatus
from bridge.errors import AgentRefused, AgentUnavailable
from bridge.placement.local.decide import Busy, Start, Wait, busy_from
from bridge.placement.shared import HOLDING
from bridge.storage import local_placement as local_rows
from bridge.storage import nodes as node_rows
from bridge.storage import placement as rows
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Database
from bridge.storage.local_placement import HeldTask

log = logging.getLogger(__name__)
T = TaskStatus
# Where each engine takes its API key: the environment, never argv, which every local user
# can read in /proc. Keyed engines refuse callers without it, so nothing on this machine
# reaches them around the gateway's keys and usage. (SGLang takes it on argv only.)
_KEY_ENV = {Engine.LLAMACPP: "API_KEY", Engine.VLLM: "VLLM_API_KEY"}


@dataclass(frozen=True, slots=True)
class GroupInput:
    group: TaskGroup | None
    nodes: list[Node]
    busy: Busy


@dataclass(frozen=True, slots=True)
class SweepInput:
    waiting: list[str]  # groups with a pending task
    nodes: list[str]  # online
    held: list[HeldTask]
    running: dict[str, set[str]]  # node id -> task ids its agent runs (reachable ones only)


class LocalApply:
    def __init__(self, db: Database, agents: AgentClient, box: SecretBox) -> None:
        self.db, self.agents, self.box = db, agents, box

    # ------------------------------------------------------------------ load

    async def load_group(self, group_id: str) -> GroupInput:
        async with self.db.transaction() as conn:
            group = await group_rows.get_task_group(conn, group_id)
            nodes = [n for n in await node_rows.list_nodes(conn) if n.status == "online"]
            held = await local_rows.held_tasks(conn, HOLDING)
        return GroupInput(group, nodes, busy_from(held))

    async def load_sweep(self) -> SweepInput:
        async with self.db.transaction() as conn:
            waiting = await local_rows.waiting_groups(conn)
            # A row placed a moment ago may not have reached its agent yet: not lost.
            held = await local_rows.held_tasks(conn, HOLDING, local_only=True)
            nodes = [n.id for n in await node_rows.list_nodes(conn) if n.status == "online"]
        running: dict[str, set[str]] = {}
        for node_id in {*nodes, *(t.node_id for t in held)}:
            try:
                url, secret = await self.agent(node_id)
                status = await self.agents.status(url, secret)
            except (AgentUnavailable, AgentRefused):
                continue  # unknown is not lost: wait for the agent
            running[node_id] = status.live_task_ids()
        return SweepInput(waiting, nodes, held, running)

    async def agent(self, node_id: str) -> tuple[str, str]:
        async with self.db.transaction() as conn:
            url, sealed = await node_rows.agent_endpoint(conn, node_id)
        if not url or not sealed:
            raise AgentUnavailable(f"node {node_id} has no reachable agent", details={})
        return url, self.box.open(sealed)

    # ------------------------------------------------------------------ apply

    async def start(self, group: TaskGroup, s: Start) -> None:
        task, node, engine = s.task, s.node, s.engine
        for victim in s.preempts:  # lower-priority tasks give way first, told why
            await self.back_to_pending(victim, s.preempt_reason)
            with contextlib.suppress(AgentUnavailable):
                await self.stop_engine(node.id, victim)
        async with self.db.transaction() as conn:
            if not await rows.update_task_if(
                    conn, task.id, T.PENDING.value, status=T.SCHEDULED.value,
                    status_reason=f"starting {engine.value} on {node.name}",
                    node_id=node.id, node_name=node.name, gpu_id=",".join(s.gpu_ids) or None,
                    address=s.address, version=group.version):
                return  # someone else moved it
            # always written: a share left from an earlier placement must not be counted
            await local_rows.set_gpu_share(conn, task.id, s.share.as_json() if s.share else None)
            await rows.update_group_if(conn, group.id, TaskGroupStatus.PENDING.value,
                                       status=TaskGroupStatus.SCHEDULING.value,
                                       status_reason="starting on this machine")
            if group.engine is None:
                await local_rows.set_engine(conn, group.id, engine.value)
            if group.health_check.path == "/health" and s.health_path != "/health":
                # The default check means "the engine is ready"; this engine says so at
                # another path, and the gateway must probe where it answers.
                await local_rows.set_health_path(conn, group.id, s.health_path)
        env = s.env
        key_env = _KEY_ENV.get(engine)
        if key_env:  # only the agent (which starts it) and the gateway know the key
            env = {**env, key_env: self.box.engine_key(task.id)}
        start = StartTask(
            task_id=task.id, argv=s.argv, env=env, port=s.port, gpu_vendor=s.vendor,
            gpu_ids=s.gpu_ids,
            # a service keeps trying, backing off once the attempts are spent (Nomad
            # reschedules without end too), rather than failing until someone retries
            restart=RestartPolicy(attempts=2, delay_seconds=5.0, mode="delay"),
            # An explicit check (a version may change it) is where the agent waits too.
            health_path=(group.health_check.path if group.health_check.path != "/health"
                         else s.health_path),
            engine=engine.value, sleep_api=ENGINES[engine].sleep_api,
            idle_timeout_minutes=group.idle_timeout_minutes)
        try:
            url, secret = await self.agent(node.id)
            await self.agents.start_task(url, secret, start)
        except (AgentUnavailable, AgentRefused) as exc:
            await self.back_to_pending(task.id, f"the agent on {node.name} did not start it: "
                                                f"{exc.message}")
            return
        log.info("task started locally", extra={"task_id": task.id, "node": node.name,
                                               "gpus": list(s.gpu_ids), "engine": engine.value})

    async def wait(self, group: TaskGroup, w: Wait) -> None:
        async with self.db.transaction() as conn:
            await rows.update_task_if(conn, w.task.id, T.PENDING.value, status_reason=w.reason)
            await rows.update_group_if(conn, group.id, group.status.value,
                                       status_reason=w.reason)

    async def back_to_pending(self, task_id: str, reason: str) -> None:
        async with self.db.transaction() as conn:
            task = await group_rows.get_task(conn, task_id)
            if task is None or task.status in (T.PENDING, T.COMPLETED, T.FAILED):
                return
            await rows.update_task_if(conn, task_id, task.status.value, status=T.PENDING.value,
                                      status_reason=reason, node_id=None, node_name=None,
                                      gpu_id=None, address=None, gpu_share=None)
            await rows.follow_group(conn, task.group_id)

    async def stop_engine(self, node_id: str, task_id: str) -> None:
        """Ask the node's agent to end a task's engine; one it no longer runs is fine."""
        url, secret = await self.agent(node_id)
        with contextlib.suppress(AgentRefused):
            await self.agents.stop_task(url, secret, task_id)
