"""model_routes rows <-> domain objects."""

from __future__ import annotations

from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from bridge.domain.models import Algorithm, HealthCheck, ModelRoute
from bridge.storage.db import Conn
from bridge.storage.task_groups import health_to_json

_COLUMNS = (
    "id, model_name, task_group_id, engine, priority, weight, version, algorithm, status,"
    " created_at, updated_at, upstream_url, upstream_model,"
    " upstream_key_encrypted IS NOT NULL AS has_upstream_key, first_byte_timeout_s,"
    " (SELECT e.id FROM inference_endpoints e WHERE e.model_route_id = model_routes.id)"
    " AS endpoint_id"
)
# Fields a route update may change; anything else is fixed at creation.
UPDATABLE = ("priority", "weight", "version", "algorithm", "status", "upstream_url",
             "upstream_model", "upstream_key_encrypted", "first_byte_timeout_s")


def row_to_route(row: DictRow) -> ModelRoute:
    return ModelRoute(
        id=row["id"],
        model_name=row["model_name"],
        task_group_id=row["task_group_id"],
        engine=row["engine"],
        priority=row["priority"],
        weight=row["weight"],
        version=row["version"],
        algorithm=Algorithm(row["algorithm"]) if row["algorithm"] else None,
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        upstream_url=row["upstream_url"],
        upstream_model=row["upstream_model"],
        has_upstream_key=row["has_upstream_key"],
        endpoint_id=row["endpoint_id"],
        first_byte_timeout_s=row["first_byte_timeout_s"],
    )


async def insert_route(conn: Conn, r: ModelRoute, *, upstream_key_sealed: str | None = None
                       ) -> None:
    await conn.execute(
        "INSERT INTO model_routes (id, model_name, task_group_id, engine, priority, weight,"
        " version, algorithm, status, upstream_url, upstream_model, upstream_key_encrypted,"
        " first_byte_timeout_s) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (r.id, r.model_name, r.task_group_id, r.engine, r.priority, r.weight, r.version,
         r.algorithm.value if r.algorithm else None, r.status, r.upstream_url,
         r.upstream_model, upstream_key_sealed, r.first_byte_timeout_s),
    )


async def insert_route_endpoint(conn: Conn, route_id: str, endpoint_id: str) -> None:
    """An external route's own endpoint, which its API keys belong to."""
    await conn.execute(
        "INSERT INTO inference_endpoints (id, name, task_group_id, model_route_id, port,"
        " health_check) VALUES (%s, %s, NULL, %s, 443, %s)",
        (endpoint_id, f"route-{route_id}", route_id, Jsonb(health_to_json(HealthCheck()))))


async def get_route(conn: Conn, route_id: str, *, for_update: bool = False) -> ModelRoute | None:
    lock = " FOR UPDATE" if for_update else ""
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM model_routes WHERE id = %s{lock}",
                             (route_id,))
    row = await cur.fetchone()
    return row_to_route(row) if row else None


async def list_routes(
    conn: Conn, *, model_name: str | None = None, task_group_id: str | None = None
) -> list[ModelRoute]:
    clauses: list[str] = []
    params: list[Any] = []
    if model_name:
        clauses.append("model_name = %s")
        params.append(model_name)
    if task_group_id:
        clauses.append("task_group_id = %s")
        params.append(task_group_id)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM model_routes{where} ORDER BY model_name, priority, version",
        params,
    )
    return [row_to_route(r) for r in await cur.fetchall()]


async def update_route(conn: Conn, route_id: str, changes: dict[str, Any]) -> None:
    assert changes and set(changes) <= set(UPDATABLE), changes
    sets = ", ".join(f"{column} = %s" for column in changes)
    await conn.execute(
        f"UPDATE model_routes SET {sets}, updated_at = now() WHERE id = %s",
        [*changes.values(), route_id],
    )


async def delete_route(conn: Conn, route_id: str) -> None:
    await conn.execute("DELETE FROM model_routes WHERE id = %s", (route_id,))
