"""A database outage as the REST API's clients see it: 503 in the usual error shape within
seconds (the pool does not keep them waiting its 30 s), /healthz saying the database is
down and /readyz refusing, then service again once the database is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bridge.storage.embedded import EmbeddedPostgres
from bridge.storage.migrate import apply_migrations
from tests.support.pg import TEST_SECRET_KEY, free_port

pytestmark = pytest.mark.slow
CLIENT_TIMEOUT_S = 20.0  # well under the pool's default 30 s, well over its 5 s


@pytest.fixture
async def outage(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedPostgres, str, str]]:
    from sanic import Sanic

    from bridge.app import create_app
    from bridge.services.users import bootstrap_admin
    from bridge.settings import BridgeSettings
    from bridge.storage.db import Database

    pg = EmbeddedPostgres(tmp_path / "home" / "pgdata")
    url = await asyncio.to_thread(pg.start)
    try:
        await apply_migrations(url)
        db = Database(url)
        await db.open()
        token = await bootstrap_admin(db)
        await db.close()
        assert token is not None
        port = free_port()
        settings = BridgeSettings(home=Path("/nonexistent"), port=port, placement="none",
                                  secret_key=TEST_SECRET_KEY)
        app = create_app(settings, url, name="bridge_outage")
        Sanic.test_mode = True
        server = await app.create_server(host="127.0.0.1", port=port,
                                         return_asyncio_server=True, access_log=False)
        assert server is not None
        await server.startup()
        await server.before_start()
        await server.after_start()
        try:
            yield pg, f"http://127.0.0.1:{port}", token
        finally:
            await server.before_stop()
            await server.close()
            await server.after_stop()
    finally:
        await asyncio.to_thread(pg.remove)


async def test_outage_is_503_quickly_and_healthz_says_so(outage) -> None:
    pg, base, token = outage
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers,
                                 timeout=CLIENT_TIMEOUT_S) as client:
        assert (await client.get("/api/v1/task-groups")).status_code == 200
        assert (await client.get("/healthz")).json()["database"] == "ok"
        assert (await client.get("/readyz")).status_code == 200

        await asyncio.to_thread(pg.stop)
        r = await client.get("/api/v1/task-groups")
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "storage_unavailable"
        health = await client.get("/healthz")
        assert health.status_code == 200 and health.json()["database"] == "down"
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["code"] == \
            "storage_unavailable"

        await asyncio.to_thread(pg.start)
        for _ in range(60):  # the pool reconnects in the background
            r = await client.get("/api/v1/task-groups")
            if r.status_code == 200:
                break
            await asyncio.sleep(1)
        assert r.status_code == 200, r.text
        assert (await client.get("/healthz")).json()["database"] == "ok"
