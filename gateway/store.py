"""The gateway's own SQL over the bridge's tables: read-only, except its usage table.

The gateway never imports the bridge; the shapes it relies on are the columns named here
(migrations 0001-0003). Reads are whole-table and cheap (routes, groups, running tasks are
small); keys are read one digest at a time, plus a fingerprint to notice revocations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from gateway.domain import (
    ALGORITHMS,
    External,
    Group,
    HealthSpec,
    KeyGrant,
    Route,
    Snapshot,
    TaskInfo,
    build_snapshot,
    header_safe,
)
from gateway.upstream import Origin
from gateway.upstream_keys import KeyUnavailable, UpstreamKeyBox

Conn = psycopg.AsyncConnection[DictRow]

_GROUPS = (
    "SELECT g.id, g.name, g.model_name, g.status, g.health_check AS group_health,"
    " e.id AS endpoint_id, e.algorithm AS endpoint_algorithm, e.health_check AS endpoint_health"
    " FROM task_groups g LEFT JOIN inference_endpoints e ON e.task_group_id = g.id"
)
_TASKS = (
    "SELECT id, group_id, status, address, alloc_id FROM tasks"
    " WHERE status IN ('running', 'sleeping', 'waking') ORDER BY group_id, rank"
)
_ROUTES = (
    "SELECT id, model_name, task_group_id, priority, weight, version, algorithm,"
    " upstream_url, upstream_key_encrypted, upstream_model, first_byte_timeout_s,"
    " (SELECT e.id FROM inference_endpoints e WHERE e.model_route_id = model_routes.id)"
    " AS endpoint_id"
    " FROM model_routes WHERE status = 'active'"
)
_KEY = ("SELECT key_hash, id, endpoint_id FROM api_keys"
        " WHERE key_hash = %s AND revoked_at IS NULL")
_KEYS = ("SELECT key_hash, id, endpoint_id FROM api_keys"
         " WHERE key_hash = ANY(%s) AND revoked_at IS NULL")
# Changes whenever a key is created, revoked, un-revoked or deleted.
_KEYS_FINGERPRINT = ("SELECT count(*) AS n, count(revoked_at) AS revoked,"
                     " max(created_at) AS created, max(revoked_at) AS last_revoked"
                     " FROM api_keys")
_USAGE_UPSERT = (
    "INSERT INTO gateway_usage AS u (minute, api_key_id, route_id, model_name, requests,"
    " errors, prompt_tokens, completion_tokens)"
    " SELECT to_timestamp(m), k, r, mo, n, e, p, c FROM unnest(%s::bigint[], %s::text[],"
    " %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[])"
    " AS x(m, k, r, mo, n, e, p, c)"
    " ON CONFLICT (minute, api_key_id, route_id) DO UPDATE SET"
    " requests = u.requests + EXCLUDED.requests, errors = u.errors + EXCLUDED.errors,"
    " prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens,"
    " completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens"
)

# Only ever forward: replicas flushing out of order never move a key's last use back.
_KEYS_TOUCH = (
    "UPDATE api_keys AS a SET last_used_at = to_timestamp(x.t)"
    " FROM unnest(%s::text[], %s::float8[]) AS x(id, t)"
    " WHERE a.id = x.id AND (a.last_used_at IS NULL OR a.last_used_at < to_timestamp(x.t))"
)

KEY_LOOKUP_WAIT_S = 3.0
UsageRow = tuple[int, str, str, str, int, int, int, int]  # minute (unix s) first
WorldRows = tuple[list[DictRow], list[DictRow], list[DictRow]]


class Store:
    def __init__(self, url: str, *, max_size: int = 4) -> None:
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url, min_size=1, max_size=max_size, open=False,
            kwargs={"row_factory": dict_row, "autocommit": True},
            connection_class=psycopg.AsyncConnection[DictRow], name="heteroflow-gateway")

    async def open(self) -> None:
        # Not waiting: the gateway starts (and says so in its health) while the database is
        # still unreachable, and the pool keeps trying in the background.
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    async def load_world(self) -> WorldRows:
        """Groups, live tasks and active routes, as rows (compared to skip unchanged reads)."""
        async with self._pool.connection() as conn:
            group_rows = await (await conn.execute(_GROUPS)).fetchall()
            task_rows = await (await conn.execute(_TASKS)).fetchall()
            route_rows = await (await conn.execute(_ROUTES)).fetchall()
        return group_rows, task_rows, route_rows

    async def find_key(self, key_hash: str) -> tuple[str, KeyGrant] | None:
        """The stored digest and the grant of an unrevoked key. On the request path, so it
        waits for a connection only briefly."""
        async with self._pool.connection(timeout=KEY_LOOKUP_WAIT_S) as conn:
            row = await (await conn.execute(_KEY, (key_hash,))).fetchone()
        if row is None:
            return None
        return row["key_hash"], KeyGrant(key_id=row["id"], endpoint_id=row["endpoint_id"])

    async def find_keys(self, key_hashes: list[str]) -> dict[str, KeyGrant]:
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_KEYS, (key_hashes,))).fetchall()
        return {r["key_hash"]: KeyGrant(key_id=r["id"], endpoint_id=r["endpoint_id"])
                for r in rows}

    async def keys_fingerprint(self) -> tuple[Any, ...]:
        async with self._pool.connection() as conn:
            row = await (await conn.execute(_KEYS_FINGERPRINT)).fetchone()
        assert row is not None
        return (row["n"], row["revoked"], row["created"], row["last_revoked"])

    async def add_usage(self, rows: Iterable[UsageRow],
                        last_used: dict[str, float] | None = None) -> None:
        """Usage rows and keys' last use, in one transaction per flush (never per request)."""
        # Sorted by primary key, so concurrent replicas lock rows in one order (no deadlock).
        ordered = sorted(rows, key=lambda r: (r[0], r[1], r[2]))
        used = sorted((last_used or {}).items())
        if not ordered and not used:
            return
        async with self._pool.connection() as conn, conn.transaction():
            if ordered:
                columns = list(zip(*ordered, strict=True))
                await conn.execute(_USAGE_UPSERT, [list(c) for c in columns])
            if used:
                await conn.execute(_KEYS_TOUCH, ([k for k, _ in used], [t for _, t in used]))


def snapshot_from_rows(world: WorldRows, box: UpstreamKeyBox) -> Snapshot:
    group_rows, task_rows, route_rows = world
    tasks: dict[str, list[TaskInfo]] = {}
    for t in task_rows:
        tasks.setdefault(t["group_id"], []).append(
            TaskInfo(id=t["id"], status=t["status"], address=t["address"],
                     alloc_id=t["alloc_id"]))
    groups = [
        Group(id=g["id"], name=g["name"], model_name=g["model_name"], status=g["status"],
              algorithm=g["endpoint_algorithm"] or "round_robin",
              health=HealthSpec.from_json(g["endpoint_health"] or g["group_health"]),
              endpoint_id=g["endpoint_id"], tasks=tuple(tasks.get(g["id"], ())))
        for g in group_rows
    ]
    by_id = {g.id: g for g in groups}
    routes: list[Route] = []
    problems: list[str] = []
    for r in route_rows:
        route, problem = _route_from_row(r, by_id, box)
        if route is not None:
            routes.append(route)
        if problem:
            problems.append(problem)
    return build_snapshot(groups, routes, problems)


def _route_from_row(r: DictRow, groups: dict[str, Group],
                    box: UpstreamKeyBox) -> tuple[Route | None, str]:
    algorithm = r["algorithm"]
    common: dict[str, Any] = {"id": r["id"], "model_name": r["model_name"],
                              "version": header_safe(r["version"]), "priority": r["priority"],
                              "weight": r["weight"],
                              "first_byte_s": r.get("first_byte_timeout_s")}
    if r["task_group_id"] is not None:
        group = groups.get(r["task_group_id"])
        if group is None:
            return None, f"route {r['id']} skipped: task group {r['task_group_id']} is gone"
        return Route(**common, algorithm=_algorithm(algorithm or group.algorithm),
                     served_model=group.model_name, group_id=group.id), ""
    try:
        origin, base_path = Origin.from_url(r["upstream_url"])
    except ValueError as exc:
        return None, f"route {r['id']} skipped: {exc}"
    api_key = None
    if r["upstream_key_encrypted"]:
        try:
            api_key = box.decrypt(r["upstream_key_encrypted"])
        except KeyUnavailable as exc:
            return None, f"route {r['id']} skipped: its upstream key is unusable: {exc}"
        if any(c in api_key for c in "\r\n\0"):
            return None, f"route {r['id']} skipped: its upstream key has control characters"
    external = External(url=r["upstream_url"], origin=origin, base_path=base_path,
                        api_key=api_key)
    return Route(**common, algorithm=_algorithm(algorithm), endpoint_id=r.get("endpoint_id"),
                 served_model=r["upstream_model"] or r["model_name"], external=external), ""


def _algorithm(name: str | None) -> str:
    return name if name in ALGORITHMS else "round_robin"
