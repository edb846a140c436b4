"""Operations on one task that go through its node's agent: sleep, wake, state reports.

Sleep and wake follow the seed's operations table: sleep when running (or starting), wake
when sleeping, passing through ``waking``; the group's status follows its tasks. A sleep
that released GPU memory (vLLM, SGLang) gives the GPUs back to placement; a pause keeps
them, and the task says so.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from bridge.agents.client import AgentClient, SleepTarget
from bridge.agents.shapes import RemoteEngine
from bridge.crypto import SecretBox
from bridge.domain.engines import ENGINES
from bridge.domain.models import Engine, Role, Task
from bridge.domain.status import IllegalTransition, TaskStatus, transition_task
from bridge.errors import AgentUnavailable, Forbidden, InvalidState, NotFound
from bridge.services.context import Actor
from bridge.services.task_groups import get_task
from bridge.storage import audit
from bridge.storage import nodes as node_rows
from bridge.storage import placement as rows
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Conn, Database

log = logging.getLogger(__name__)
T = TaskStatus
SLEEPABLE = frozenset({T.RUNNING, T.STARTING})
# Between "sleeping" in the database and the engine's pause: a gateway reads tasks every
# second (its refresh_interval_s), so by then none routes to the task any more.
POOL_DRAIN_S = 1.5
# What an agent may report, and the task status each becomes.
REPORTED = {"starting": T.STARTING, "restarting": T.STARTING, "running": T.RUNNING,
            "sleeping": T.SLEEPING, "failed": T.FAILED, "completed": T.COMPLETED}


@dataclass(frozen=True, slots=True)
class StateReport:
    state: str
    reason: str
    address: str | None
    exit_code: int | None
    sleep_mode: str | None
    gpu_memory_released: bool | None


async def sleep_task(db: Database, agents: AgentClient, box: SecretBox, task_id: str,
                     actor: Actor) -> Task:
    async with db.transaction() as conn:
        task, engine = await _task_and_engine(conn, task_id)
        if task.status not in SLEEPABLE:
            raise _wrong_state(task, "sleep", SLEEPABLE)
        url, secret = await _agent_of(conn, box, task)
        # Sleeping in the database first: gateways drop sleeping tasks from their pools, and
        # a request sent to an engine already paused would hang until its timeout.
        await move_task(conn, task, T.SLEEPING, "going to sleep", actor, "task.sleep")
    await asyncio.sleep(POOL_DRAIN_S)
    try:
        answer = await agents.sleep(url, secret, _sleep_target(task, engine))
    except Exception:
        await _sleep_failed(db, task_id, actor)
        raise
    mode = answer.mode
    released = answer.gpu_memory_released
    reason = answer.message or (
        "asleep, GPU memory released" if released else "compute paused, GPU memory kept")
    async with db.transaction() as conn:
        current = await group_rows.get_task(conn, task_id)
        if current is None or current.status is not T.SLEEPING:
            raise InvalidState(f"task {task_id} changed while going to sleep; look again",
                               details={"id": task_id})
        await rows.update_task_if(conn, task_id, T.SLEEPING.value, status_reason=reason,
                                  sleep_mode=mode, gpu_released=released)
    return await get_task(db, task_id)


async def _sleep_failed(db: Database, task_id: str, actor: Actor) -> None:
    """The engine did not go to sleep: serving again (through waking, as the machine says)."""
    async with db.transaction() as conn:
        current = await group_rows.get_task(conn, task_id)
        if current is None or current.status is not T.SLEEPING:
            return
        await move_task(conn, current, T.WAKING, "sleep failed", actor, "task.sleep_failed")
        current = await group_rows.get_task(conn, task_id)
        if current is not None:
            await move_task(conn, current, T.RUNNING, "sleep failed; still serving", actor,
                            "task.awake")


async def wake_task(db: Database, agents: AgentClient, box: SecretBox, task_id: str,
                    actor: Actor) -> Task:
    async with db.transaction() as conn:
        task, engine = await _task_and_engine(conn, task_id)
        if task.status is T.WAKING:
            return task  # a wake is under way: one is enough
        if task.status is not T.SLEEPING:
            raise _wrong_state(task, "wake", frozenset({T.SLEEPING}))
        await _require_gpus_free(conn, task)
        url, secret = await _agent_of(conn, box, task)
        await move_task(conn, task, T.WAKING, "waking up", actor, "task.wake")
    try:
        answer = await agents.wake(url, secret, _sleep_target(task, engine))
    except Exception:
        async with db.transaction() as conn:
            current = await group_rows.get_task(conn, task_id)
            if current is not None and current.status is T.WAKING:
                await move_task(conn, current, T.SLEEPING, "wake failed; still asleep", actor,
                            "task.wake_failed")
        raise
    async with db.transaction() as conn:
        current = await group_rows.get_task(conn, task_id)
        if current is not None and current.status is T.WAKING:
            await move_task(conn, current, T.RUNNING, answer.message or "awake", actor,
                        "task.awake", sleep_mode=None, gpu_released=False)
    return await get_task(db, task_id)


async def report_task_state(db: Database, task_id: str, report: StateReport,
                            actor: Actor) -> Task:
    """An agent tells what happened to a task it runs or watches."""
    target = REPORTED[report.state]
    async with db.transaction() as conn:
        task = await group_rows.get_task(conn, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}", details={"id": task_id})
        await _require_own_node(conn, task, actor)
        if target is T.COMPLETED and task.status is not T.STOPPING:
            # An inference server ends for good only when asked to (the bridge marks that
            # with `stopping`). Ended otherwise, e.g. its agent shut down with the machine,
            # it is placed again when an agent can run it.
            target = T.PENDING
            report = StateReport(state="pending", reason=(
                f"the engine ended without a stop request ({report.reason or 'no reason'}); "
                "it is placed again"), address=None, exit_code=report.exit_code,
                sleep_mode=None, gpu_memory_released=None)
        extra: dict[str, Any] = {}
        if report.address:
            extra["address"] = report.address
        if target is T.SLEEPING:
            extra |= {"sleep_mode": report.sleep_mode,
                      "gpu_released": bool(report.gpu_memory_released)}
        elif target is T.RUNNING:
            extra |= {"sleep_mode": None, "gpu_released": False}
        if target in (T.FAILED, T.COMPLETED):
            extra["address"] = None
        if target is T.PENDING:
            extra |= {"address": None, "node_id": None, "node_name": None, "gpu_id": None}
        reason = report.reason or report.state
        if report.exit_code is not None and target is T.FAILED:
            reason = f"{reason} (exit code {report.exit_code})"
        if target is task.status:
            await rows.update_task_if(conn, task.id, task.status.value, status_reason=reason,
                                      **extra)
        else:
            await move_task(conn, task, target, reason, actor, f"task.{report.state}", **extra)
    return await get_task(db, task_id)


async def move_task(conn: Conn, task: Task, target: TaskStatus, reason: str, actor: Actor,
                action: str, **extra: Any) -> None:
    try:
        transition_task(task.status, target)
    except IllegalTransition as exc:
        raise InvalidState(str(exc), details={"status": task.status.value,
                                              "allowed": exc.allowed}) from exc
    # Lock order: the group's row, then its tasks' rows, as scaling (lock the group, delete
    # tasks) does. A task row first and the group second (follow_group) deadlocked against
    # a scale-down while an agent reported.
    await group_rows.lock_task_group(conn, task.group_id)
    if not await rows.update_task_if(conn, task.id, task.status.value, status=target.value,
                                     status_reason=reason, **extra):
        raise InvalidState(f"task {task.id} changed meanwhile; look again",
                           details={"id": task.id})
    await audit.append(conn, actor=actor.principal, action=action, object_type="task",
                       object_id=task.id, request_id=actor.request_id,
                       details={"from": task.status.value, "to": target.value,
                                "reason": reason})
    await rows.follow_group(conn, task.group_id)


async def _require_gpus_free(conn: Conn, task: Task) -> None:
    """A sleep that released GPU memory gave the GPUs back to placement; before waking,
    make sure no other task holds them now (Nomad keeps an allocation's devices anyway)."""
    if not (task.gpu_released and task.gpu_id and task.node_id and task.alloc_id is None):
        return
    mine = set(task.gpu_id.split(","))
    for holder, gpu_ids in await rows.gpu_holders(conn, task.node_id, besides=task.id):
        taken = mine & set(gpu_ids.split(","))
        if taken:
            raise InvalidState(
                f"GPU(s) {', '.join(sorted(taken))} of task {task.id} were given to task "
                f"{holder} while it slept; stop one of them, or stop this task and retry "
                "it to place it on free GPUs",
                details={"gpus": sorted(taken), "holder": holder})


async def _task_and_engine(conn: Conn, task_id: str) -> tuple[Task, Engine | None]:
    task = await group_rows.get_task(conn, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}", details={"id": task_id})
    group = await group_rows.get_task_group(conn, task.group_id)
    return task, (group.engine if group else None)


async def _agent_of(conn: Conn, box: SecretBox, task: Task) -> tuple[str, str]:
    if not task.node_id:
        raise InvalidState(f"task {task.id} is not placed on a node yet", details={})
    url, sealed = await node_rows.agent_endpoint(conn, task.node_id)
    if not url or not sealed:
        raise AgentUnavailable(
            f"no agent has reported from node {task.node_name or task.node_id}; sleep and "
            "wake need the HeteroFlow agent running there",
            details={"node_id": task.node_id})
    return url, box.open(sealed)


def _sleep_target(task: Task, engine: Engine | None) -> SleepTarget:
    """Which engine on the agent: its own tasks by id; engines Nomad placed by address."""
    if task.alloc_id is None:
        return task.id
    sleep_api = ENGINES[engine].sleep_api if engine else None
    # Nomad's docker driver names containers <task>-<allocation id>.
    return RemoteEngine(task_id=task.id, address=task.address, sleep_api=sleep_api,
                        container=f"engine-{task.alloc_id}")


async def _require_own_node(conn: Conn, task: Task, actor: Actor) -> None:
    principal = actor.principal
    if principal is None or principal.role is Role.ADMIN:
        return
    if not await node_rows.reported_by(conn, task.node_id, principal.name):
        raise Forbidden(f"task {task.id} does not run on a node this agent reports",
                        details={"node_id": task.node_id})


def _wrong_state(task: Task, verb: str, allowed: frozenset[TaskStatus]) -> InvalidState:
    names = ", ".join(sorted(s.value for s in allowed))
    return InvalidState(f"task {task.id} is {task.status.value}; {verb} needs {names}",
                        details={"status": task.status.value,
                                 "allowed": sorted(s.value for s in allowed)})
