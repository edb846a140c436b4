"""api_keys rows (gateway client keys) <-> domain objects. Only digests are stored."""

from __future__ import annotations

from psycopg.rows import DictRow

from bridge.domain.models import ApiKey
from bridge.storage.db import Conn

_COLUMNS = "id, endpoint_id, name, key_prefix, created_by, created_at, last_used_at, revoked_at"


def row_to_api_key(row: DictRow) -> ApiKey:
    return ApiKey(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        name=row["name"],
        prefix=row["key_prefix"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


async def insert_api_key(conn: Conn, key: ApiKey, *, key_hash: str) -> None:
    await conn.execute(
        "INSERT INTO api_keys (id, endpoint_id, name, key_prefix, key_hash, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (key.id, key.endpoint_id, key.name, key.prefix, key_hash, key.created_by),
    )


async def list_api_keys(conn: Conn, endpoint_id: str) -> list[ApiKey]:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM api_keys WHERE endpoint_id = %s ORDER BY created_at, id",
        (endpoint_id,),
    )
    return [row_to_api_key(r) for r in await cur.fetchall()]


async def get_api_key(conn: Conn, endpoint_id: str, key_id: str) -> ApiKey | None:
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM api_keys WHERE id = %s AND endpoint_id = %s",
        (key_id, endpoint_id),
    )
    row = await cur.fetchone()
    return row_to_api_key(row) if row else None


async def revoke_api_key(conn: Conn, key_id: str) -> None:
    await conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
