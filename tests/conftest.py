"""Shared fixtures: a real embedded PostgreSQL for the session, a fresh migrated database per
test from a template, and the real bridge app serving HTTP on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
from psycopg import sql

from bridge.storage.embedded import EmbeddedPostgres
from bridge.storage.migrate import apply_migrations
from tests.support import reaper
from tests.support.bridge_server import BridgeUnderTest, running_bridge
from tests.support.pg import TEMPLATE, fresh_database, with_database

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
    server.remove()  # also the folder its data was moved to, when run as root


@pytest.fixture
def db_url(pg: EmbeddedPostgres) -> str:
    return fresh_database(pg)


@pytest.fixture(scope="session")
async def bridge(pg: EmbeddedPostgres) -> AsyncIterator[BridgeUnderTest]:
    async with running_bridge(pg, "bridge_under_test", node_offline_seconds=6) as served:
        yield served


@pytest.fixture
async def admin(bridge: BridgeUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    async with bridge.client(bridge.admin_token) as client:
        yield client
