"""audit_log rows: append and read, never update."""

from __future__ import annotations

from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from bridge.domain.models import AuditEntry, Principal
from bridge.storage.db import Conn

_COLUMNS = "id, at, actor_id, actor_name, action, object_type, object_id, details, request_id"


def row_to_entry(row: DictRow) -> AuditEntry:
    return AuditEntry(**{k: row[k] for k in row})


async def append(
    conn: Conn, *, actor: Principal | None, action: str, object_type: str, object_id: str,
    details: dict[str, Any] | None = None, request_id: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, actor_name, action, object_type, object_id, details,"
        " request_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (actor.user_id if actor else None, actor.name if actor else "system", action,
         object_type, object_id, Jsonb(details or {}), request_id),
    )


async def list_entries(
    conn: Conn, *, object_type: str | None, object_id: str | None, actor: str | None,
    action: str | None, limit: int, offset: int,
) -> tuple[list[AuditEntry], int]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("object_type", object_type), ("object_id", object_id),
                          ("actor_name", actor), ("action", action)):
        if value:
            clauses.append(f"{column} = %s")
            params.append(value)
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    cur = await conn.execute(f"SELECT count(*) AS n FROM audit_log{where}", params)
    row = await cur.fetchone()
    total = int(row["n"]) if row else 0
    cur = await conn.execute(
        f"SELECT {_COLUMNS} FROM audit_log{where} ORDER BY at DESC, id DESC LIMIT %s OFFSET %s",
        [*params, limit, offset],
    )
    return [row_to_entry(r) for r in await cur.fetchall()], total
