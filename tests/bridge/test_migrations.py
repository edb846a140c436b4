"""Ordered migrations with a migrations table, applied once even by concurrent starters."""

from __future__ import annotations

import asyncio

import psycopg

from bridge.storage.migrate import apply_migrations, available_migrations
from tests.support.pg import fresh_database, with_database


async def test_fresh_database_gets_every_migration(pg) -> None:
    url = fresh_database(pg)
    name = "empty_" + url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(pg.admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    empty = with_database(pg.admin_url(), name)
    shipped = [n for _, n, _ in available_migrations()]
    results = await asyncio.gather(*(apply_migrations(empty) for _ in range(4)))
    # each migration applied exactly once over all four starters
    assert sorted(name for names in results for name in names) == shipped
    assert await apply_migrations(empty) == []
    with psycopg.connect(empty) as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version")
        assert [r[1] for r in rows] == shipped
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"task_groups", "tasks", "inference_endpoints", "model_routes", "api_keys", "users",
            "api_tokens", "audit_log", "schema_migrations"} <= tables


def test_versions_are_ordered_and_unique() -> None:
    versions = [v for v, _, _ in available_migrations()]
    assert versions == sorted(set(versions)) and versions[0] == 1
