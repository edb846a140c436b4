"""inference_endpoints rows <-> domain objects."""

from __future__ import annotations

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from bridge.domain.models import Algorithm, InferenceEndpoint
from bridge.storage.db import Conn
from bridge.storage.task_groups import health_from_json, health_to_json

_COLUMNS = "id, name, task_group_id, protocol, port, algorithm, health_check, created_at"


def row_to_endpoint(row: DictRow) -> InferenceEndpoint:
    return InferenceEndpoint(
        id=row["id"],
        name=row["name"],
        task_group_id=row["task_group_id"],
        protocol=row["protocol"],
        port=row["port"],
        algorithm=Algorithm(row["algorithm"]),
        health_check=health_from_json(row["health_check"]),
        created_at=row["created_at"],
    )


async def insert_endpoint(conn: Conn, ep: InferenceEndpoint) -> None:
    await conn.execute(
        "INSERT INTO inference_endpoints (id, name, task_group_id, protocol, port, algorithm,"
        " health_check) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (ep.id, ep.name, ep.task_group_id, ep.protocol, ep.port, ep.algorithm.value,
         Jsonb(health_to_json(ep.health_check))),
    )


async def get_endpoint(conn: Conn, endpoint_id: str) -> InferenceEndpoint | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM inference_endpoints WHERE id = %s", (endpoint_id,)
    )
    row = await cur.fetchone()
    return row_to_endpoint(row) if row else None


