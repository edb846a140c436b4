"""The real bridge app serving HTTP on a loopback port, on its own fresh database, with an
admin token: what the REST tests (and the fuzzer, which needs a bridge of its own) call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bridge.storage.embedded import EmbeddedPostgres
from tests.support.pg import TEST_SECRET_KEY, free_port, fresh_database


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


@asynccontextmanager
async def running_bridge(pg: EmbeddedPostgres, name: str,
                         **settings: Any) -> AsyncIterator[BridgeUnderTest]:
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
    app = create_app(BridgeSettings(home=Path("/nonexistent"), port=port,
                                    max_body_bytes=65_536, secret_key=TEST_SECRET_KEY,
                                    placement="none", **settings), url, name=name)
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
