"""Placement facts of task and group rows: guarded short writes, the group status that
follows its tasks, and who holds which GPUs."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from psycopg.rows import DictRow

from bridge.domain.status import TASK_GROUP_TRANSITIONS, TaskGroupStatus, derive_group
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Conn

log = logging.getLogger(__name__)

_GROUP_SQL = (
    "SELECT g.id, g.name, g.status, g.status_reason, g.nomad_job_id, g.current_replicas,"
    " t.id AS task_id, t.rank, t.status AS task_status, t.status_reason AS task_reason,"
    " t.node_id, t.node_name, t.alloc_id, t.address, t.gpu_id"
    " FROM task_groups g LEFT JOIN tasks t ON t.group_id = g.id"
)


async def load_group_rows(
    conn: Conn, *, job_ids: Iterable[str] | None = None, group_ids: Iterable[str] | None = None
) -> list[DictRow]:
    """One row per (group, task), for all groups or those of some jobs / ids."""
    where, params = "", []
    if job_ids is not None:
        where, params = " WHERE g.nomad_job_id = ANY(%s)", [list(job_ids)]
    elif group_ids is not None:
        where, params = " WHERE g.id = ANY(%s)", [list(group_ids)]
    cur = await conn.execute(_GROUP_SQL + where + " ORDER BY g.id, t.rank", params)
    return await cur.fetchall()


async def update_task_if(conn: Conn, task_id: str, expected: str, **values: Any) -> bool:
    """Write placement facts of one task if it still has the status the caller saw."""
    sets = ", ".join(f"{k} = %s" for k in values)
    cur = await conn.execute(
        f"UPDATE tasks SET {sets}, updated_at = now() WHERE id = %s AND status = %s",
        [*values.values(), task_id, expected],
    )
    return cur.rowcount == 1


TASK_FIELDS = ("status", "status_reason", "node_id", "node_name", "alloc_id", "address",
               "gpu_id")
GROUP_FIELDS = ("status", "status_reason", "current_replicas")
_CHUNK = 1000  # rows per statement, well under PostgreSQL's 65,535 parameters


async def update_tasks_if(
    conn: Conn, writes: Sequence[tuple[str, str, Sequence[Any]]]
) -> set[str]:
    """Many guarded task writes, one statement per thousand: (task id, the status the caller
    saw, values of TASK_FIELDS) each; returns the ids written (the others changed meanwhile).

    One event-stream frame moves many tasks at once; a round trip per row made the
    reconciler's writes the bridge's largest database cost (bench/placement.py)."""
    return await _update_many(conn, "tasks", TASK_FIELDS, ("text",) * 7, writes)


async def update_groups_if(
    conn: Conn, writes: Sequence[tuple[str, str, Sequence[Any]]]
) -> set[str]:
    """Like update_tasks_if, for groups: values of GROUP_FIELDS."""
    return await _update_many(conn, "task_groups", GROUP_FIELDS, ("text", "text", "int"),
                              writes)


async def _update_many(
    conn: Conn, table: str, fields: tuple[str, ...], types: tuple[str, ...],
    writes: Sequence[tuple[str, str, Sequence[Any]]],
) -> set[str]:
    done: set[str] = set()
    sets = ", ".join(f"{f} = v.{f}" for f in fields)
    row = "(" + ", ".join(f"%s::{t}" for t in ("text", "text", *types)) + ")"
    for start in range(0, len(writes), _CHUNK):
        chunk = writes[start:start + _CHUNK]
        cur = await conn.execute(
            f"UPDATE {table} AS r SET {sets}, updated_at = now()"  # names: constants
            f" FROM (VALUES {', '.join([row] * len(chunk))})"
            f" AS v(id, expected, {', '.join(fields)})"
            " WHERE r.id = v.id AND r.status = v.expected RETURNING r.id",
            [x for w in chunk for x in (w[0], w[1], *w[2])])
        done.update(r["id"] for r in await cur.fetchall())
    return done


async def update_group_if(conn: Conn, group_id: str, expected: str, **values: Any) -> bool:
    sets = ", ".join(f"{k} = %s" for k in values)
    cur = await conn.execute(
        f"UPDATE task_groups SET {sets}, updated_at = now() WHERE id = %s AND status = %s",
        [*values.values(), group_id, expected],
    )
    return cur.rowcount == 1


async def follow_group(conn: Conn, group_id: str) -> None:
    """The group's status, reason and running count follow its tasks."""
    group = await group_rows.get_task_group(conn, group_id, for_update=True)
    if group is None:
        return
    status, reason, running = derive_group(group.tasks, stopped=False, why_pending=None)
    if status is not group.status and status not in TASK_GROUP_TRANSITIONS[group.status]:
        log.warning("group status not followed", extra={
            "task_group_id": group_id, "from": group.status.value, "to": status.value})
        return
    await update_group_if(conn, group_id, group.status.value, status=status.value,
                          status_reason=reason, current_replicas=running)


async def record_registration(
    conn: Conn, group_id: str, *, job_id: str, modify_index: int, engine: str | None
) -> None:
    await conn.execute(
        "UPDATE task_groups SET nomad_job_id = %s, job_modify_index = %s,"
        " engine = COALESCE(engine, %s), status = CASE WHEN status = 'pending'"
        " THEN 'scheduling' ELSE status END, status_reason = 'registered with Nomad;"
        " waiting for placement', updated_at = now() WHERE id = %s",
        (job_id, modify_index, engine, group_id),
    )
    if engine:
        await conn.execute("UPDATE model_routes SET engine = COALESCE(engine, %s)"
                           " WHERE task_group_id = %s", (engine, group_id))


async def set_group_reason(
    conn: Conn, group_id: str, reason: str, *, status: TaskGroupStatus | None = None
) -> None:
    if status is None:
        await conn.execute("UPDATE task_groups SET status_reason = %s, updated_at = now()"
                           " WHERE id = %s", (reason, group_id))
        return
    await conn.execute("UPDATE task_groups SET status_reason = %s, status = %s,"
                       " updated_at = now() WHERE id = %s", (reason, status.value, group_id))
    await conn.execute("UPDATE tasks SET status_reason = %s, updated_at = now()"
                       " WHERE group_id = %s AND status = 'pending'", (reason, group_id))


async def route_version(conn: Conn, group_id: str) -> str:
    cur = await conn.execute(
        "SELECT version FROM model_routes WHERE task_group_id = %s"
        " ORDER BY (status = 'active') DESC, priority, created_at LIMIT 1", (group_id,))
    row = await cur.fetchone()
    return str(row["version"]) if row else "v1"


async def gpu_holders(conn: Conn, node_id: str, *, besides: str) -> list[tuple[str, str]]:
    """(task id, its GPU ids) of the node's other tasks that hold GPUs now; a sleep that
    released GPU memory holds none."""
    cur = await conn.execute(
        "SELECT id, gpu_id FROM tasks WHERE node_id = %s AND id <> %s AND gpu_id IS NOT NULL"
        " AND status IN ('scheduled', 'starting', 'running', 'waking', 'stopping')"
        " UNION ALL SELECT id, gpu_id FROM tasks WHERE node_id = %s AND id <> %s"
        " AND status = 'sleeping' AND NOT gpu_released AND gpu_id IS NOT NULL",
        (node_id, besides, node_id, besides))
    return [(r["id"], r["gpu_id"]) for r in await cur.fetchall()]
