"""nodes rows: upserted by heartbeats, marked offline by the bridge."""

from __future__ import annotations

from typing import Any

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from bridge.domain.models import Node
from bridge.errors import Forbidden
from bridge.storage.db import Conn

_COLUMNS = (
    "id, name, status, status_reason, agent_url, nomad_node_id, facts, gpus, skipped_vendors,"
    " engines, models, last_heartbeat, created_at"
)


def row_to_node(row: DictRow) -> Node:
    return Node(**{k: row[k] for k in _COLUMNS.replace(" ", "").split(",")})


async def upsert_heartbeat(
    conn: Conn, *, node_id: str, name: str, agent_url: str | None,
    agent_secret_enc: str | None, nomad_node_id: str | None, facts: dict[str, Any],
    gpus: list[dict[str, Any]], skipped: dict[str, str], engines: list[str],
    models: list[dict[str, Any]] | None, registered_by: str,
) -> str | None:
    """Record a heartbeat; returns the node's previous status (None for a new node)."""
    cur = await conn.execute("SELECT status FROM nodes WHERE id = %s FOR UPDATE", (node_id,))
    before = await cur.fetchone()
    models_json = Jsonb(models) if models is not None else None
    cur = await conn.execute(
        "INSERT INTO nodes (id, name, agent_url, agent_secret_enc, nomad_node_id, facts, gpus,"
        " skipped_vendors, engines, models, models_updated_at, registered_by)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, COALESCE(%s, '[]'::jsonb),"
        " CASE WHEN %s::jsonb IS NULL THEN NULL ELSE now() END, %s)"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
        " agent_url = EXCLUDED.agent_url,"
        " agent_secret_enc = COALESCE(EXCLUDED.agent_secret_enc, nodes.agent_secret_enc),"
        " nomad_node_id = EXCLUDED.nomad_node_id, facts = EXCLUDED.facts,"
        " gpus = EXCLUDED.gpus, skipped_vendors = EXCLUDED.skipped_vendors,"
        " engines = EXCLUDED.engines,"
        " models = CASE WHEN %s::jsonb IS NULL THEN nodes.models ELSE EXCLUDED.models END,"
        " models_updated_at = CASE WHEN %s::jsonb IS NULL THEN nodes.models_updated_at"
        " ELSE now() END,"
        " status = 'online', status_reason = '', last_heartbeat = now()"
        " WHERE nodes.registered_by = EXCLUDED.registered_by",
        (node_id, name, agent_url, agent_secret_enc, nomad_node_id, Jsonb(facts), Jsonb(gpus),
         Jsonb(skipped), Jsonb(engines), models_json, models_json, registered_by,
         models_json, models_json),
    )
    if cur.rowcount == 0:
        raise Forbidden(f"node {node_id} is reported by another agent account; each node "
                        "keeps the account that registered it", details={"node_id": node_id})
    return str(before["status"]) if before else None


async def mark_offline(conn: Conn, older_than_seconds: int) -> list[str]:
    cur = await conn.execute(
        "UPDATE nodes SET status = 'offline', status_reason = %s"
        " WHERE status = 'online' AND last_heartbeat < now() - make_interval(secs => %s)"
        " RETURNING id",
        (f"no heartbeat for more than {older_than_seconds} s", older_than_seconds),
    )
    return [r["id"] for r in await cur.fetchall()]


async def list_nodes(conn: Conn) -> list[Node]:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM nodes ORDER BY name, id")
    return [row_to_node(r) for r in await cur.fetchall()]


async def get_node(conn: Conn, node_id: str) -> Node | None:
    cur = await conn.execute(f"SELECT {_COLUMNS} FROM nodes WHERE id = %s", (node_id,))
    row = await cur.fetchone()
    return row_to_node(row) if row else None


async def agent_endpoint(conn: Conn, node_id: str) -> tuple[str | None, str | None]:
    """(agent_url, sealed agent secret) of a node."""
    # Nomad-placed tasks carry Nomad's node id, which the agent reports as nomad_node_id.
    cur = await conn.execute(
        "SELECT agent_url, agent_secret_enc FROM nodes WHERE id = %s OR nomad_node_id = %s"
        " ORDER BY (id = %s) DESC, last_heartbeat DESC LIMIT 1", (node_id, node_id, node_id))
    row = await cur.fetchone()
    return (row["agent_url"], row["agent_secret_enc"]) if row else (None, None)


async def reported_by(conn: Conn, node_id: str | None, principal_name: str) -> bool:
    """Whether the agent of ``principal_name`` registered the node (by id or Nomad id)."""
    cur = await conn.execute(
        "SELECT 1 FROM nodes WHERE (id = %s OR nomad_node_id = %s) AND registered_by = %s",
        (node_id, node_id, principal_name))
    return await cur.fetchone() is not None
