"""task_groups and tasks rows <-> domain objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from bridge.domain.models import (
    Engine,
    GpuVendor,
    HealthCheck,
    PortMapping,
    QoS,
    Task,
    TaskGroup,
)
from bridge.domain.queries import GroupFilter, TaskFilter
from bridge.domain.status import RollingUpdateState, TaskGroupStatus, TaskStatus
from bridge.domain.topology import Parallelism
from bridge.storage.db import Conn

_GROUP_COLUMNS = (
    "id, name, status, status_reason, parallelism, world_size, node_count, current_replicas,"
    " min_replicas, max_replicas, auto_scale, endpoint_id, rolling_update_state,"
    " idle_timeout_minutes, timeout_seconds, image, engine, command, model_path, model_name,"
    " gpu_required, gpu_type, ports, qos, estimated_gpu_memory_mb, enable_api, health_check,"
    " scale_policy, co_schedule, schedule_window, created_by, created_at, updated_at,"
    " nomad_job_id, job_modify_index"
)
_TASK_COLUMNS = (
    "id, group_id, rank, status, status_reason, image, gpu_required, gpu_type, gpu_id, node_id,"
    " model_path, ports, volumes, estimated_gpu_memory_mb, created_at, updated_at, address,"
    " alloc_id, node_name, sleep_mode, gpu_released"
)


def _jsonb(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def health_to_json(check: HealthCheck) -> dict[str, Any]:
    return {
        "type": check.type,
        "path": check.path,
        "interval_seconds": check.interval_seconds,
        "timeout_seconds": check.timeout_seconds,
        "unhealthy_threshold": check.unhealthy_threshold,
    }


def health_from_json(data: dict[str, Any]) -> HealthCheck:
    return HealthCheck(**data)


def row_to_task(row: DictRow) -> Task:
    return Task(
        id=row["id"],
        group_id=row["group_id"],
        rank=row["rank"],
        status=TaskStatus(row["status"]),
        status_reason=row["status_reason"],
        image=row["image"],
        gpu_required=row["gpu_required"],
        gpu_type=row["gpu_type"],
        gpu_id=row["gpu_id"],
        node_id=row["node_id"],
        model_path=row["model_path"],
        ports=row["ports"],
        volumes=row["volumes"],
        estimated_gpu_memory_mb=row["estimated_gpu_memory_mb"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        address=row["address"],
        alloc_id=row["alloc_id"],
        node_name=row["node_name"],
        sleep_mode=row["sleep_mode"],
        gpu_released=row["gpu_released"],
    )


def row_to_task_group(row: DictRow, tasks: list[Task] | None = None) -> TaskGroup:
    return TaskGroup(
        id=row["id"],
        name=row["name"],
        status=TaskGroupStatus(row["status"]),
        status_reason=row["status_reason"],
        parallelism=Parallelism(row["parallelism"]),
        world_size=row["world_size"],
        node_count=row["node_count"],
        current_replicas=row["current_replicas"],
        min_replicas=row["min_replicas"],
        max_replicas=row["max_replicas"],
        auto_scale=row["auto_scale"],
        endpoint_id=row["endpoint_id"],
        rolling_update_state=RollingUpdateState(row["rolling_update_state"]),
        idle_timeout_minutes=row["idle_timeout_minutes"],
        timeout_seconds=row["timeout_seconds"],
        image=row["image"],
        engine=Engine(row["engine"]) if row["engine"] else None,
        command=row["command"],
        model_path=row["model_path"],
        model_name=row["model_name"],
        gpu_required=row["gpu_required"],
        gpu_type=GpuVendor(row["gpu_type"]) if row["gpu_type"] else None,
        ports=[PortMapping(container=p["container"], host=p["host"]) for p in row["ports"]],
        qos=QoS(row["qos"]),
        estimated_gpu_memory_mb=row["estimated_gpu_memory_mb"],
        enable_api=row["enable_api"],
        health_check=health_from_json(row["health_check"]),
        scale_policy=row["scale_policy"],
        co_schedule=row["co_schedule"],
        schedule_window=row["schedule_window"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        tasks=tasks or [],
        nomad_job_id=row["nomad_job_id"],
        job_modify_index=row["job_modify_index"],
    )


async def insert_task_group(conn: Conn, g: TaskGroup) -> None:
    await conn.execute(
        "INSERT INTO task_groups (id, name, status, status_reason, parallelism, world_size,"
        " node_count, current_replicas, min_replicas, max_replicas, auto_scale, endpoint_id,"
        " rolling_update_state, idle_timeout_minutes, timeout_seconds, image, engine, command,"
        " model_path, model_name, gpu_required, gpu_type, ports, qos, estimated_gpu_memory_mb,"
        " enable_api, health_check, scale_policy, co_schedule, schedule_window, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            g.id, g.name, g.status.value, g.status_reason, g.parallelism.value, g.world_size,
            g.node_count, g.current_replicas, g.min_replicas, g.max_replicas, g.auto_scale,
            g.endpoint_id, g.rolling_update_state.value, g.idle_timeout_minutes,
            g.timeout_seconds, g.image, g.engine.value if g.engine else None, g.command,
            g.model_path, g.model_name, g.gpu_required,
            g.gpu_type.value if g.gpu_type else None,
            Jsonb([p.as_json() for p in g.ports]), g.qos.value, g.estimated_gpu_memory_mb,
            g.enable_api, Jsonb(health_to_json(g.health_check)), _jsonb(g.scale_policy),
            _jsonb(g.co_schedule), _jsonb(g.schedule_window), g.created_by,
        ),
    )


async def insert_tasks(conn: Conn, tasks: list[Task]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO tasks (id, group_id, rank, status, status_reason, image, gpu_required,"
            " gpu_type, gpu_id, node_id, model_path, ports, volumes, estimated_gpu_memory_mb)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    t.id, t.group_id, t.rank, t.status.value, t.status_reason, t.image,
                    t.gpu_required, t.gpu_type, t.gpu_id, t.node_id, t.model_path,
                    Jsonb(t.ports), Jsonb(t.volumes), t.estimated_gpu_memory_mb,
                )
                for t in tasks
            ],
        )


async def lock_task_group(conn: Conn, group_id: str) -> None:
    """Lock a group's row for this transaction: taken before any of its tasks' rows."""
    await conn.execute("SELECT 1 FROM task_groups WHERE id = %s FOR UPDATE", (group_id,))


async def get_task_group(
    conn: Conn, group_id: str, *, for_update: bool = False
) -> TaskGroup | None:
    lock = " FOR UPDATE" if for_update else ""
    cur = await conn.execute(
        f"SELECT {_GROUP_COLUMNS} FROM task_groups WHERE id = %s{lock}", (group_id,)
    )
    row = await cur.fetchone()
    if row is None:
        return None
    cur = await conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM tasks WHERE group_id = %s ORDER BY rank", (group_id,))
    tasks = [row_to_task(r) for r in await cur.fetchall()]
    return row_to_task_group(row, tasks)


async def list_task_groups(
    conn: Conn, flt: GroupFilter, *, limit: int, offset: int
) -> tuple[list[TaskGroup], int]:
    where, params = _group_where(flt)
    cur = await conn.execute(f"SELECT count(*) AS n FROM task_groups{where}", params)
    total = (await cur.fetchone() or {"n": 0})["n"]
    cur = await conn.execute(
        f"SELECT {_GROUP_COLUMNS} FROM task_groups{where}"
        " ORDER BY created_at DESC, id DESC LIMIT %s OFFSET %s",
        [*params, limit, offset],
    )
    rows = await cur.fetchall()
    groups = [row_to_task_group(r) for r in rows]
    if groups:
        by_group: dict[str, list[Task]] = {g.id: [] for g in groups}
        cur = await conn.execute(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE group_id = ANY(%s) ORDER BY group_id, rank",
            (list(by_group),),
        )
        for r in await cur.fetchall():
            by_group[r["group_id"]].append(row_to_task(r))
        groups = [row_to_task_group(r, by_group[r["id"]]) for r in rows]
    return groups, total


def _group_where(flt: GroupFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if flt.status:
        clauses.append("status = %s")
        params.append(flt.status)
    if flt.name:
        clauses.append("position(%s in name) > 0")
        params.append(flt.name)
    if flt.model_name:
        clauses.append("model_name = %s")
        params.append(flt.model_name)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


async def delete_task_group(conn: Conn, group_id: str) -> None:
    # tasks, endpoint, routes and keys go with it (ON DELETE CASCADE).
    await conn.execute("DELETE FROM task_groups WHERE id = %s", (group_id,))


async def delete_tasks_from_rank(conn: Conn, group_id: str, rank: int) -> None:
    """Remove the group's tasks of ``rank`` and above (a scale down)."""
    await conn.execute("DELETE FROM tasks WHERE group_id = %s AND rank >= %s",
                       (group_id, rank))


async def transaction_time(conn: Conn) -> datetime:
    """The transaction's timestamp: the created_at/updated_at its inserts defaulted to."""
    cur = await conn.execute("SELECT transaction_timestamp() AS at")
    row = await cur.fetchone()
    assert row is not None
    at: datetime = row["at"]
    return at


async def list_tasks(
    conn: Conn, flt: TaskFilter, *, limit: int, offset: int
) -> list[Task]:
    where, params = _task_where(flt)
    cur = await conn.execute(
        f"SELECT {_TASK_COLUMNS} FROM tasks{where}"
        " ORDER BY created_at DESC, group_id, rank LIMIT %s OFFSET %s",
        [*params, limit, offset],
    )
    return [row_to_task(r) for r in await cur.fetchall()]


async def count_tasks(conn: Conn, flt: TaskFilter) -> int:
    where, params = _task_where(flt)
    cur = await conn.execute(f"SELECT count(*) AS n FROM tasks{where}", params)
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


def _task_where(flt: TaskFilter) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("group_id", flt.group_id), ("status", flt.status),
                          ("node_id", flt.node_id)):
        if value:
            clauses.append(f"{column} = %s")
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


async def get_task(conn: Conn, task_id: str) -> Task | None:
    cur = await conn.execute(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = %s", (task_id,))
    row = await cur.fetchone()
    return row_to_task(row) if row else None
