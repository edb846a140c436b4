"""task_group_versions rows, and the group and task columns a rollout moves (0007)."""

from __future__ import annotations

from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from bridge.domain.status import RollingUpdateState
from bridge.domain.versions import ServiceVersion, VersionSpec
from bridge.storage.db import Conn
from bridge.storage.task_groups import health_to_json

_COLUMNS = "group_id, version, spec, changes, strategy, note, created_by, created_at"


def _row(r: DictRow) -> ServiceVersion:
    return ServiceVersion(group_id=r["group_id"], version=r["version"],
                          spec=VersionSpec.from_json(r["spec"]), changes=r["changes"],
                          strategy=r["strategy"], note=r["note"], created_by=r["created_by"],
                          created_at=r["created_at"])


async def insert_version(conn: Conn, v: ServiceVersion) -> None:
    await conn.execute(
        "INSERT INTO task_group_versions (group_id, version, spec, changes, strategy, note,"
        " created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (v.group_id, v.version, Jsonb(v.spec.as_json()), Jsonb(v.changes), v.strategy, v.note,
         v.created_by))


async def list_versions(conn: Conn, group_id: str) -> list[ServiceVersion]:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM task_group_versions WHERE group_id = %s"
                             " ORDER BY version", (group_id,))
    return [_row(r) for r in await cur.fetchall()]


async def get_version(conn: Conn, group_id: str, version: int) -> ServiceVersion | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM task_group_versions WHERE group_id = %s"
                             " AND version = %s", (group_id, version))
    row = await cur.fetchone()
    return _row(row) if row else None


async def latest_version(conn: Conn, group_id: str) -> int:
    cur = await conn.execute("SELECT coalesce(max(version), 0) AS v FROM task_group_versions"
                             " WHERE group_id = %s", (group_id,))
    row = await cur.fetchone()
    return int(row["v"]) if row else 0


async def set_group_spec(conn: Conn, group_id: str, version: int, spec: VersionSpec) -> None:
    """The group now runs (or rolls to) ``version``: new replicas start from these fields."""
    await conn.execute(
        "UPDATE task_groups SET version = %s, image = %s, command = %s, engine_args = %s,"
        " model_path = %s, env = %s, health_check = %s, updated_at = now() WHERE id = %s",
        (version, spec.image, spec.command, Jsonb(list(spec.engine_args)), spec.model_path,
         Jsonb(spec.env), Jsonb(health_to_json(spec.health_check)), group_id))
    # The gateway probes the endpoint's check, so a new one applies there at once; the
    # default path means "where the engine says it is ready", which placement already put
    # there (llama-cpp-python answers at another path), so that path is kept.
    await conn.execute(
        "UPDATE inference_endpoints SET health_check = jsonb_set(%s::jsonb, '{path}',"
        " CASE WHEN %s = '/health' THEN health_check->'path' ELSE to_jsonb(%s::text) END)"
        " WHERE task_group_id = %s",
        (Jsonb(health_to_json(spec.health_check)), spec.health_check.path,
         spec.health_check.path, group_id))


async def set_rollout(conn: Conn, group_id: str, state: RollingUpdateState,
                      rollout: dict[str, Any] | None, reason: str | None = None) -> None:
    if reason is None:
        await conn.execute("UPDATE task_groups SET rolling_update_state = %s, rollout = %s,"
                           " updated_at = now() WHERE id = %s",
                           (state.value, Jsonb(rollout) if rollout else None, group_id))
        return
    await conn.execute("UPDATE task_groups SET rolling_update_state = %s, rollout = %s,"
                       " status_reason = %s, updated_at = now() WHERE id = %s",
                       (state.value, Jsonb(rollout) if rollout else None, reason, group_id))


async def rolling_groups(conn: Conn, *, on_nomad: bool = False) -> list[str]:
    """Groups with a rollout in progress, placed here or (``on_nomad``) on Nomad."""
    cur = await conn.execute(
        "SELECT id FROM task_groups WHERE nomad_job_id IS "
        + ("NOT NULL" if on_nomad else "NULL") +
        " AND rolling_update_state IN ('rolling', 'rollback')"
        " AND NOT coalesce((rollout->>'done')::boolean, false) ORDER BY id")
    return [r["id"] for r in await cur.fetchall()]


async def next_rank(conn: Conn, group_id: str) -> int:
    cur = await conn.execute("SELECT coalesce(max(rank) + 1, 0) AS r FROM tasks"
                             " WHERE group_id = %s", (group_id,))
    row = await cur.fetchone()
    return int(row["r"]) if row else 0


async def delete_task(conn: Conn, task_id: str) -> None:
    await conn.execute("DELETE FROM tasks WHERE id = %s", (task_id,))


async def renumber_ranks(conn: Conn, group_id: str) -> None:
    """Ranks 0..n-1 again after a rollout (surge replicas took ranks above the count), so a
    later scale down removes the highest ranks as before."""
    # Out of the way first: (group_id, rank) is unique at every statement.
    await conn.execute("UPDATE tasks SET rank = rank + 1000000 WHERE group_id = %s",
                       (group_id,))
    await conn.execute(
        "UPDATE tasks t SET rank = o.n FROM (SELECT id, row_number() OVER (ORDER BY rank)"
        " - 1 AS n FROM tasks WHERE group_id = %s) o WHERE t.id = o.id", (group_id,))
