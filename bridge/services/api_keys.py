"""Gateway API keys of an endpoint: list (prefixes only), create (clear text once), revoke."""

from __future__ import annotations

from bridge.domain.models import ApiKey
from bridge.errors import NotFound
from bridge.services.context import Actor
from bridge.services.task_groups import issue_api_key
from bridge.storage import api_keys as key_rows
from bridge.storage import audit
from bridge.storage import endpoints as endpoint_rows
from bridge.storage.db import Conn, Database


async def list_keys(db: Database, endpoint_id: str) -> list[ApiKey]:
    async with db.transaction() as conn:
        await _require_endpoint(conn, endpoint_id)
        return await key_rows.list_api_keys(conn, endpoint_id)


async def create_key(db: Database, endpoint_id: str, name: str, actor: Actor) -> tuple[ApiKey, str]:
    async with db.transaction() as conn:
        await _require_endpoint(conn, endpoint_id)
        key, secret = await issue_api_key(conn, endpoint_id, name, actor)
        await audit.append(
            conn, actor=actor.principal, action="api_key.create", object_type="api_key",
            object_id=key.id, request_id=actor.request_id,
            details={"endpoint_id": endpoint_id, "name": name, "prefix": key.prefix},
        )
        stored = await key_rows.get_api_key(conn, endpoint_id, key.id)
    assert stored is not None
    return stored, secret


async def revoke_key(db: Database, endpoint_id: str, key_id: str, actor: Actor) -> ApiKey:
    """Revoke a key; revoking a revoked key changes nothing and is not an error."""
    async with db.transaction() as conn:
        key = await key_rows.get_api_key(conn, endpoint_id, key_id)
        if key is None:
            raise NotFound(f"endpoint {endpoint_id} has no API key {key_id}",
                           details={"endpoint_id": endpoint_id, "id": key_id})
        if key.active:
            await key_rows.revoke_api_key(conn, key_id)
            await audit.append(
                conn, actor=actor.principal, action="api_key.revoke", object_type="api_key",
                object_id=key_id, request_id=actor.request_id,
                details={"endpoint_id": endpoint_id, "prefix": key.prefix},
            )
        revoked = await key_rows.get_api_key(conn, endpoint_id, key_id)
    assert revoked is not None
    return revoked


async def _require_endpoint(conn: Conn, endpoint_id: str) -> None:
    if await endpoint_rows.get_endpoint(conn, endpoint_id) is None:
        raise NotFound(f"no inference endpoint {endpoint_id}", details={"id": endpoint_id})
