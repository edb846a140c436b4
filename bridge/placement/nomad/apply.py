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
    stale = tasks = groups = 0
    async with db.transaction() as conn:
        for t in plan.tasks:
            ok = await rows.update_task_if(
                conn, t.task_id, t.expected.value, status=t.status.value,
                status_reason=t.reason, node_id=t.node_id, node_name=t.node_name,
                alloc_id=t.alloc_id, address=t.address, gpu_id=t.gpu_id)
            tasks += ok
            stale += not ok
        for g in plan.groups:
            ok = await rows.update_group_if(
                conn, g.group_id, g.expected.value, status=g.status.value,
                status_reason=g.reason, current_replicas=g.current_replicas)
            groups += ok
            stale += not ok
            if ok and g.status != g.expected:
                await audit.append(conn, actor=None, action="task_group.status",
                                   object_type="task_group", object_id=g.group_id,
                                   details={"from": g.expected.value, "to": g.status.value,
                                            "reason": g.reason})
    return Applied(tasks, groups, stale)
