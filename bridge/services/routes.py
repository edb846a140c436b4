"""Model routes: the canary / priority rules an operator edits through the API."""

from __future__ import annotations

from typing import Any

from bridge.crypto import SecretBox
from bridge.domain import ids
from bridge.domain.models import Algorithm, ModelRoute
from bridge.errors import Conflict, NotFound, ValidationFailed
from bridge.services.context import Actor
from bridge.storage import audit
from bridge.storage import model_routes as route_rows
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Database, DuplicateKey


async def list_routes(
    db: Database, *, model_name: str | None, task_group_id: str | None
) -> list[ModelRoute]:
    async with db.transaction() as conn:
        return await route_rows.list_routes(conn, model_name=model_name,
                                            task_group_id=task_group_id)


async def get_route(db: Database, route_id: str) -> ModelRoute:
    async with db.transaction() as conn:
        route = await route_rows.get_route(conn, route_id)
    if route is None:
        raise NotFound(f"no model route {route_id}", details={"id": route_id})
    return route


async def create_route(
    db: Database, *, model_name: str, task_group_id: str | None, weight: int, priority: int,
    version: str, algorithm: Algorithm | None, status: str, actor: Actor,
    upstream_url: str | None = None, upstream_key: str | None = None,
    upstream_model: str | None = None, box: SecretBox | None = None,
    first_byte_timeout_s: float | None = None,
) -> ModelRoute:
    """A route to a local task group, or to an external upstream (hybrid fallback)."""
    sealed = None
    if upstream_key is not None:
        assert box is not None, "sealing an upstream key needs the secret box"
        sealed = box.seal(upstream_key)
    try:
        async with db.transaction() as conn:
            engine = None
            if task_group_id is not None:
                group = await group_rows.get_task_group(conn, task_group_id)
                if group is None:
                    raise ValidationFailed(
                        f"task_group_id {task_group_id} names no task group",
                        details={"field": "task_group_id"},
                    )
                engine = group.engine.value if group.engine else None
            route = ModelRoute(
                id=ids.new_route_id(), model_name=model_name, task_group_id=task_group_id,
                engine=engine, priority=priority, weight=weight, version=version,
                algorithm=algorithm, status=status, upstream_url=upstream_url,
                upstream_model=upstream_model, first_byte_timeout_s=first_byte_timeout_s,
            )
            await route_rows.insert_route(conn, route, upstream_key_sealed=sealed)
            if upstream_url is not None:  # callable with keys of its own, like a service
                await route_rows.insert_route_endpoint(conn, route.id, ids.new_endpoint_id())
            await audit.append(
                conn, actor=actor.principal, action="model_route.create",
                object_type="model_route", object_id=route.id, request_id=actor.request_id,
                details={"model_name": model_name, "version": version, "weight": weight,
                         "priority": priority, "task_group_id": task_group_id,
                         "upstream_url": upstream_url, "upstream_key": sealed is not None},
            )
            return await _reload(conn, route.id)
    except DuplicateKey as exc:
        raise _version_taken(model_name, version) from exc


async def update_route(
    db: Database, route_id: str, changes: dict[str, Any], actor: Actor,
    box: SecretBox | None = None,
) -> ModelRoute:
    if not changes:
        raise ValidationFailed("nothing to change: give weight, priority, version, algorithm "
                               "or status", details={})
    changes = dict(changes)
    if "upstream_key" in changes:
        key = changes.pop("upstream_key")
        assert box is not None, "sealing an upstream key needs the secret box"
        changes["upstream_key_encrypted"] = box.seal(key) if key is not None else None
    try:
        async with db.transaction() as conn:
            before = await route_rows.get_route(conn, route_id, for_update=True)
            if before is None:
                raise NotFound(f"no model route {route_id}", details={"id": route_id})
            model_name = before.model_name
            upstream_only = {"upstream_url", "upstream_model", "upstream_key_encrypted"}
            if before.upstream_url is None and upstream_only & set(changes):
                raise ValidationFailed(
                    "this route serves a local task group; upstream fields apply to routes "
                    "created with upstream_url", details={"field": "upstream_url"})
            stored = {k: (v.value if isinstance(v, Algorithm) else v) for k, v in changes.items()}
            await route_rows.update_route(conn, route_id, stored)
            # The sealed key is recorded as changed, never as its value.
            shown = {k: ("(changed)" if k == "upstream_key_encrypted" else v)
                     for k, v in stored.items()}
            await audit.append(
                conn, actor=actor.principal, action="model_route.update",
                object_type="model_route", object_id=route_id, request_id=actor.request_id,
                details={"model_name": before.model_name, "changes": shown,
                         "before": {k: _plain(getattr(before, k)) for k in stored
                                    if k != "upstream_key_encrypted"}},
            )
            return await _reload(conn, route_id)
    except DuplicateKey as exc:
        raise _version_taken(model_name, str(changes.get("version"))) from exc


async def delete_route(db: Database, route_id: str, actor: Actor) -> ModelRoute:
    async with db.transaction() as conn:
        route = await route_rows.get_route(conn, route_id, for_update=True)
        if route is None:
            raise NotFound(f"no model route {route_id}", details={"id": route_id})
        await route_rows.delete_route(conn, route_id)
        await audit.append(
            conn, actor=actor.principal, action="model_route.delete", object_type="model_route",
            object_id=route_id, request_id=actor.request_id,
            details={"model_name": route.model_name, "version": route.version},
        )
    return route


async def _reload(conn: Any, route_id: str) -> ModelRoute:
    route = await route_rows.get_route(conn, route_id)
    assert route is not None
    return route


def _plain(value: object) -> object:
    return value.value if isinstance(value, Algorithm) else value


def _version_taken(model_name: str, version: str) -> Conflict:
    return Conflict(
        f"model {model_name!r} already has a route with version {version!r}",
        details={"field": "version", "model_name": model_name, "version": version},
    )
