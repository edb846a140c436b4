"""Shared fixtures: a real embedded PostgreSQL for the session, a fresh migrated database per
test from a template, and the real bridge app serving HTTP on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from bridge.storage.embedded import EmbeddedPostgres
from bridge.storage.migrate import apply_migrations
from tests.support import reaper
from tests.support.pg import TEMPLATE, TEST_SECRET_KEY, free_port, fresh_database, with_database

# Before any fixture starts a process: every child inherits the tag, and is reaped by it.
SESSION_TAG = reaper.install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    left = reaper.reap(SESSION_TAG)
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"reaped {len(left)} processes the tests left behind:",
                                yellow=True)
            for line in left:
                reporter.write_line(f"  {line}")


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    server.start()
    template_url = with_database(server.admin_url(), TEMPLATE)
    with psycopg.connect(server.admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    asyncio.run(apply_migrations(template_url))
    yield server
    server.stop()


@pytest.fixture
def db_url(pg: EmbeddedPostgres) -> str:
    return fresh_database(pg)


class BridgeUnderTest:
    """The real bridge app on a loopback port, with helpers to call it."""

    def __init__(self, base_url: str, db_url: str, admin_token: str) -> None:
        self.base_url = base_url
        self.db_url = db_url
        self.admin_token = admin_token

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url + "/api/v1", headers=headers,
                                 timeout=30)

    def sql(self, query: Any, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="session")
async def bridge(pg: EmbeddedPostgres) -> AsyncIterator[BridgeUnderTest]:
    from sanic import Sanic

    from bridge.app import create_app
    from bridge.services.users import bootstrap_admin
    from bridge.settings import BridgeSettings
    from bridge.storage.db import Database

    Sanic.test_mode = True
    url = fresh_database(pg)
    db = Database(url)
    await db.open()
    token = await bootstrap_admin(db)
    await db.close()
    assert token is not None
    port = free_port()
    settings = BridgeSettings(home=Path("/nonexistent"), port=port, max_body_bytes=65_536,
                              secret_key=TEST_SECRET_KEY, node_offline_seconds=6,
                              placement="none")
    app = create_app(settings, url, name="bridge_under_test")
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=False)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield BridgeUnderTest(f"http://127.0.0.1:{port}", url, token)
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()


@pytest.fixture
async def admin(bridge: BridgeUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    async with bridge.client(bridge.admin_token) as client:
        yield client
