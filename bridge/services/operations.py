"""Service operations of the seed's table that go through placement: stop, retry, scale.

| operation | allowed when              | effect                                          |
|-----------|---------------------------|-------------------------------------------------|
| stop      | running, starting (and    | the engine ends; task -> stopping -> completed  |
|           | scheduled, sleeping)      |                                                 |
| retry     | failed                    | task -> pending, placed again                   |
| scale     | group running/scheduling  | replicas = tasks; new ranks pending, the highest |
|           |                           | ranks stopped and removed                       |
| start     | group completed (stopped) | its completed tasks -> pending, placed again    |
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from bridge.domain import ids
from bridge.domain.models import Task, TaskGroup
from bridge.domain.status import TaskGroupStatus, TaskStatus
from bridge.domain.windows import window_refusal
from bridge.errors import Conflict, InvalidState, NotFound, ValidationFailed
from bridge.placement.port import PlacementPort
from bridge.services.context import Actor
from bridge.services.task_groups import get_task
from bridge.services.task_ops import move_task
from bridge.storage import audit
from bridge.storage import placement as rows
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Database

T = TaskStatus
# stopping too: a stop whose call to Nomad or the agent failed can be sent again.
STOPPABLE = frozenset({T.RUNNING, T.STARTING, T.SCHEDULED, T.SLEEPING, T.STOPPING})
SCALABLE = frozenset({TaskGroupStatus.RUNNING, TaskGroupStatus.SCHEDULING})


async def stop_task(db: Database, placement: PlacementPort | None, task_id: str,
                    actor: Actor) -> Task:
    group, task = await _load(db, task_id)
    if task.status not in STOPPABLE:
        raise InvalidState(f"task {task.id} is {task.status.value}; stop needs one of: "
                           + ", ".join(sorted(s.value for s in STOPPABLE)),
                           details={"status": task.status.value})
    if placement is not None:
        placement.check_stop(group, task)
    # `stopping` first: the engine's end is then known to be asked for, not a crash.
    if task.status is not T.STOPPING:
        async with db.transaction() as conn:
            await move_task(conn, task, T.STOPPING, "stopping on request", actor, "task.stop")
    ended = placement is not None and await placement.stop_task(group, task)
    async with db.transaction() as conn:
        if ended:
            current = await group_rows.get_task(conn, task_id)
            if current is not None and current.status is T.STOPPING:
                # The agent's own report of the engine's end may land between the read and
                # the write ("changed meanwhile"): the stop happened, which is what was asked.
                with contextlib.suppress(InvalidState):
                    await move_task(conn, current, T.COMPLETED, "stopped on request", actor,
                                    "task.stopped", address=None)
    return await get_task(db, task_id)


async def retry_task(db: Database, placement: PlacementPort | None, task_id: str,
                     actor: Actor) -> Task:
    group, task = await _load(db, task_id)
    if task.status is not T.FAILED:
        raise InvalidState(f"task {task.id} is {task.status.value}; only a failed task is "
                           "retried", details={"status": task.status.value})
    async with db.transaction() as conn:
        await move_task(conn, task, T.PENDING, "placing it again (retry)", actor, "task.retry",
                    node_id=None, node_name=None, gpu_id=None, address=None)
    if placement is not None:
        await placement.retry_task(group, task)
    return await get_task(db, task_id)


async def scale_group(db: Database, placement: PlacementPort | None, group_id: str,
                      replicas: int, actor: Actor, *, reason: str | None = None) -> TaskGroup:
    """``reason``: why the autoscaler or a window moves it (kept in the audit entry)."""
    async with db.transaction() as conn:
        group = await group_rows.get_task_group(conn, group_id)
    if group is None:
        raise NotFound(f"no task group {group_id}", details={"id": group_id})
    if group.status not in SCALABLE:
        raise InvalidState(f"task group {group.name} is {group.status.value}; scaling needs "
                           "running or scheduling", details={"status": group.status.value})
    if replicas < group.min_replicas or (group.max_replicas and replicas > group.max_replicas):
        bound = f"{group.min_replicas}-{group.max_replicas or 'unlimited'}"
        raise ValidationFailed(f"replicas must be within min/max replicas ({bound})",
                               details={"field": "replicas"})
    outside = window_refusal(group, replicas, datetime.now(UTC))
    if outside:
        raise ValidationFailed(outside, details={"field": "replicas"})
    current = len(group.tasks)
    if replicas == current:
        return group
    if (group.rollout or {}).get("done") is False:
        raise InvalidState(f"task group {group.name} is rolling out version {group.version} "
                           f"({group.update_progress}); scale when it has completed",
                           details={"rolling_update_state": group.rolling_update_state.value})
    removed = [t for t in group.tasks if t.rank >= replicas]
    if placement is not None:
        await placement.scale(group, replicas, reason)
        if not placement.ends_removed_ranks(group):
            for task in removed:
                if task.status in STOPPABLE | {T.WAKING}:
                    if task.status is not T.STOPPING:
                        async with db.transaction() as conn:
                            await move_task(conn, task, T.STOPPING, "scaled away", actor,
                                            "task.stop")
                    await placement.stop_task(group, task)
    async with db.transaction() as conn:
        locked = await group_rows.get_task_group(conn, group.id, for_update=True)
        if locked is None or len(locked.tasks) != current:
            raise Conflict("the service was scaled meanwhile; look again and retry",
                           details={"replicas": len(locked.tasks) if locked else 0})
        if replicas > current:
            template = group.tasks[0]
            new = [Task(id=ids.new_task_id(group.id, rank), group_id=group.id, rank=rank,
                        status=T.PENDING, status_reason="waiting for placement",
                        image=group.image, gpu_required=template.gpu_required,
                        gpu_type=template.gpu_type, gpu_id=None, node_id=None,
                        model_path=group.model_path, ports=template.ports, volumes=[],
                        estimated_gpu_memory_mb=template.estimated_gpu_memory_mb,
                        version=group.version)
                   for rank in range(current, replicas)]
            await group_rows.insert_tasks(conn, new)
        else:
            await group_rows.delete_tasks_from_rank(conn, group.id, replicas)
        await audit.append(conn, actor=actor.principal, action="task_group.scale",
                           object_type="task_group", object_id=group.id,
                           request_id=actor.request_id,
                           details={"from": current, "to": replicas,
                                    "removed": [t.id for t in removed],
                                    **({"reason": reason} if reason else {})})
        await rows.follow_group(conn, group.id)
    if placement is not None:
        placement.scaled(group, replicas)
    async with db.transaction() as conn:
        scaled = await group_rows.get_task_group(conn, group_id)
    assert scaled is not None
    return scaled


async def begin_drain(db: Database, tasks: list[Task], reason: str, actor: Actor) -> None:
    """Mark running replicas ``stopping`` before a scale-down removes them: the gateways
    send them no new request (they route to running tasks only) while the streams they
    serve finish; scale_group then stops them (docs/policies.md)."""
    async with db.transaction() as conn:
        for task in tasks:
            if task.status is T.RUNNING:
                await move_task(conn, task, T.STOPPING, reason, actor, "task.drain")


async def _load(db: Database, task_id: str) -> tuple[TaskGroup, Task]:
    async with db.transaction() as conn:
        task = await group_rows.get_task(conn, task_id)
        group = await group_rows.get_task_group(conn, task.group_id) if task else None
    if task is None or group is None:
        raise NotFound(f"no task {task_id}", details={"id": task_id})
    return group, task


async def start_group(db: Database, placement: PlacementPort | None, group_id: str,
                      actor: Actor) -> TaskGroup:
    """Start a stopped service again: its completed tasks are placed again (on the group's
    current version), as a retry does for failed ones."""
    async with db.transaction() as conn:
        group = await group_rows.get_task_group(conn, group_id)
    if group is None:
        raise NotFound(f"no task group {group_id}", details={"id": group_id})
    stopped = [t for t in group.tasks if t.status in (T.COMPLETED, T.FAILED)]
    if group.status not in (TaskGroupStatus.COMPLETED, TaskGroupStatus.FAILED) or not stopped:
        raise InvalidState(f"task group {group.name} is {group.status.value}; start needs a "
                           "stopped (completed) or failed service",
                           details={"status": group.status.value})
    async with db.transaction() as conn:
        # pending first: the group's status then follows its tasks being placed again.
        await rows.update_group_if(conn, group.id, group.status.value,
                                   status=TaskGroupStatus.PENDING.value,
                                   status_reason="starting again")
        for task in stopped:
            # No allocation either: the stopped one is done, the next one is new.
            await move_task(conn, task, T.PENDING, "placing it again (start)", actor,
                            "task.start", node_id=None, node_name=None, gpu_id=None,
                            address=None, alloc_id=None)
        await audit.append(conn, actor=actor.principal, action="task_group.start",
                           object_type="task_group", object_id=group.id,
                           request_id=actor.request_id,
                           details={"tasks": [t.id for t in stopped], "version": group.version})
    if placement is not None:
        await placement.retry_task(group, stopped[0])
    async with db.transaction() as conn:
        started = await group_rows.get_task_group(conn, group_id)
    assert started is not None
    return started
