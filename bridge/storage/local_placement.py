"""Rows local placement reads and writes beyond the guarded task and group updates."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from bridge.domain.status import TaskStatus
from bridge.storage.db import Conn


@dataclass(frozen=True, slots=True)
class HeldTask:
    """A task placed on a node, in a status that keeps it there."""

    task_id: str
    node_id: str
    status: TaskStatus
    gpu_id: str | None  # comma-separated device indices
    address: str | None
    gpu_released: bool
    # Placed long enough ago that its agent must know it by now (not a stop in progress).
    settled: bool
    gpu_share: dict[str, Any] | None = None  # the share it holds (docs/gpu-sharing.md)
    qos: str | None = None  # its group's, for preemption


async def held_tasks(conn: Conn, statuses: Iterable[TaskStatus], *,
                     local_only: bool = False) -> list[HeldTask]:
    """Tasks on a node in one of ``statuses``; ``local_only``: of groups Nomad does not run."""
    cur = await conn.execute(
        "SELECT t.id, t.node_id, t.status, t.gpu_id, t.address, t.gpu_released, t.gpu_share,"
        " g.qos,"
        " t.updated_at < now() - interval '30 seconds' AND t.status <> 'stopping'"
        " AS settled"
        " FROM tasks t JOIN task_groups g ON g.id = t.group_id"
        " WHERE t.node_id IS NOT NULL AND t.status = ANY(%s)"
        + (" AND g.nomad_job_id IS NULL" if local_only else ""),
        ([s.value for s in statuses],))
    return [HeldTask(task_id=r["id"], node_id=r["node_id"], status=TaskStatus(r["status"]),
                     gpu_id=r["gpu_id"], address=r["address"],
                     gpu_released=bool(r["gpu_released"]), settled=bool(r["settled"]),
                     gpu_share=r["gpu_share"], qos=r["qos"])
            for r in await cur.fetchall()]


async def waiting_groups(conn: Conn) -> list[str]:
    """Groups placed here (not on Nomad) and still live that have a pending task."""
    cur = await conn.execute(
        "SELECT DISTINCT t.group_id FROM tasks t JOIN task_groups g ON g.id = t.group_id"
        " WHERE t.status = 'pending' AND g.nomad_job_id IS NULL"
        " AND g.status IN ('pending', 'scheduling', 'running', 'sleeping')")
    return [r["group_id"] for r in await cur.fetchall()]


async def set_engine(conn: Conn, group_id: str, engine: str) -> None:
    await conn.execute("UPDATE task_groups SET engine = %s WHERE id = %s", (engine, group_id))


async def set_health_path(conn: Conn, group_id: str, path: str) -> None:
    """Where the gateway probes the group's endpoint."""
    await conn.execute(
        "UPDATE inference_endpoints SET health_check = jsonb_set(health_check,"
        " '{path}', to_jsonb(%s::text)) WHERE task_group_id = %s",
        (path, group_id))


async def set_gpu_share(conn: Conn, task_id: str, share: dict[str, Any] | None) -> None:
    """The share a task now holds (None: whole GPUs); placement counts shares from it."""
    await conn.execute("UPDATE tasks SET gpu_share = %s WHERE id = %s",
                       (Jsonb(share) if share is not None else None, task_id))
