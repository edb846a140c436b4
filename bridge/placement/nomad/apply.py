"""Load the stored side for decide(), and apply a Plan with short, guarded writes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from psycopg.rows import DictRow

from bridge.domain.status import TaskGroupStatus, TaskStatus
from bridge.placement.nomad.plan import GroupRow, Plan, TaskRow
from bridge.storage import audit
from bridge.storage import placement as rows
from bridge.storage.db import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Applied:
    tasks: int
    groups: int
    stale: int


async def load_groups(
    db: Database, *, job_ids: Iterable[str] | None = None,
    group_ids: Iterable[str] | None = None,
) -> list[GroupRow]:
    async with db.transaction() as conn:
        raw = await rows.load_group_rows(conn, job_ids=job_ids, group_ids=group_ids)
    return to_group_rows(raw)


def to_group_rows(raw: list[DictRow]) -> list[GroupRow]:
    by_id: dict[str, tuple[DictRow, list[TaskRow]]] = {}
    for r in raw:
        _, tasks = by_id.setdefault(r["id"], (r, []))
        if r["task_id"] is not None:
            tasks.append(TaskRow(
                id=r["task_id"], rank=r["rank"], status=TaskStatus(r["task_status"]),
                status_reason=r["task_reason"], node_id=r["node_id"], node_name=r["node_name"],
                alloc_id=r["alloc_id"], address=r["address"], gpu_id=r["gpu_id"]))
    return [
        GroupRow(id=r["id"], name=r["name"], status=TaskGroupStatus(r["status"]),
                 status_reason=r["status_reason"], job_id=r["nomad_job_id"],
                 current_replicas=r["current_replicas"], tasks=tuple(tasks))
        for r, tasks in by_id.values()
    ]


async def apply_changes(db: Database, plan: Plan) -> Applied:
    """Write the plan's row changes in one short transaction; skip rows changed meanwhile."""
    for note in plan.notes:
        log.warning("reconcile move refused", extra={"note": note})
    if not (plan.tasks or plan.groups):
        return Applied(0, 0, 0)
    async with db.transaction() as conn:
        # One statement for the tasks a frame moved, one for their groups: the guarded
        # writes used to be a round trip each (bench/placement.py, psycopg's wait on top).
        written = await rows.update_tasks_if(conn, [
            (t.task_id, t.expected.value,
             (t.status.value, t.reason, t.node_id, t.node_name, t.alloc_id, t.address,
              t.gpu_id)) for t in plan.tasks])
        moved = await rows.update_groups_if(conn, [
            (g.group_id, g.expected.value, (g.status.value, g.reason, g.current_replicas))
            for g in plan.groups])
        for g in plan.groups:
            if g.group_id in moved and g.status != g.expected:
                await audit.append(conn, actor=None, action="task_group.status",
                                   object_type="task_group", object_id=g.group_id,
                                   details={"from": g.expected.value, "to": g.status.value,
                                            "reason": g.reason})
    tasks = sum(t.task_id in written for t in plan.tasks)
    groups = sum(g.group_id in moved for g in plan.groups)
    return Applied(tasks, groups, len(plan.tasks) - tasks + len(plan.groups) - groups)
