"""``heteroflow up`` shape: the gateway attached to the bridge's app, one port for both.

Also the contract with the bridge's writes: an external route created through the REST API
(its key sealed by the bridge) is decrypted and used by the gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sanic import Sanic

from bridge.app import create_app as create_bridge
from bridge.services.users import bootstrap_admin
from bridge.settings import BridgeSettings
from bridge.storage.db import Database
from gateway.app import attach
from gateway.settings import GatewaySettings
from tests.support.gateway_harness import Double, World
from tests.support.pg import TEST_SECRET_KEY, free_port, fresh_database

CLOUD_KEY = "sk-cloud-attached-0001"


class Shared:
    def __init__(self, url: str, world: World, admin: str) -> None:
        self.url = url
        self.world = world
        self.admin = admin


@pytest.fixture(scope="module")
async def shared(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Shared]:
    Sanic.test_mode = True
    db_url = fresh_database(pg)
    db = Database(db_url)
    await db.open()
    admin = await bootstrap_admin(db)
    await db.close()
    assert admin is not None
    port = free_port()
    home = tmp_path_factory.mktemp("home")
    app = create_bridge(BridgeSettings(home=home, port=port, secret_key=TEST_SECRET_KEY,
                                       max_body_bytes=65_536),
                        db_url, name="bridge_with_gateway")
    attach(app, GatewaySettings(home=home, port=port, secret_key=TEST_SECRET_KEY,
                                consul_http_addr=None, refresh_interval_s=0.2,
                                key_recheck_interval_s=0.2), db_url)
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=False)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        yield Shared(f"http://127.0.0.1:{port}", World(db_url), admin)
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()


async def test_bridge_and_gateway_share_the_port(shared: Shared,
                                                 tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=shared.url, timeout=30) as http:
        assert (await http.get("/healthz")).status_code == 200  # the bridge's
        gateway_health = (await http.get("/gateway/health")).json()
        assert gateway_health["discovery"]["mode"] == "embedded"
        assert "heteroflow_gateway_requests_total" in (await http.get("/metrics")).text
        r = await http.get("/v1/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = await http.get("/v1/nowhere")
        assert r.json()["error"]["code"] == "unknown_url"  # OpenAI's shape under /v1
        r = await http.get("/api/v1/nowhere")
        assert r.status_code == 404 and "details" in r.json()["error"]  # the bridge's shape


async def test_external_route_written_by_the_bridge(shared: Shared, tmp_path: Path) -> None:
    cloud = Double(tmp_path, "cloud", "cloud-model", extra=["--api-key", CLOUD_KEY])
    try:
        group = shared.world.add_group("attached", route=False)
        auth = {"Authorization": f"Bearer {shared.admin}"}
        async with httpx.AsyncClient(base_url=shared.url, timeout=30) as http:
            created = await http.post("/api/v1/model-routes", headers=auth, json={
                "model_name": "attached", "upstream_url": f"{cloud.url}/v1",
                "upstream_key": CLOUD_KEY, "upstream_model": "cloud-model"})
            assert created.status_code == 201, created.text
            assert CLOUD_KEY not in created.text  # never returned
            for _ in range(100):
                r = await http.post("/v1/chat/completions",
                                    headers={"Authorization": f"Bearer {group.key}"},
                                    json={"model": "attached", "messages": []})
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert r.status_code == 200, r.text
            assert r.headers["x-heteroflow-backend"] == "external"
            # The app-wide body limit is the bridge's (64 KiB here); the gateway's own
            # (8 MiB by default) governs its routes.
            big = {"model": "attached", "messages": [{"role": "user", "content": "x" * 200_000}]}
            r = await http.post("/v1/chat/completions", json=big,
                                headers={"Authorization": f"Bearer {group.key}"})
            assert r.status_code == 200, r.text
            r = await http.post("/api/v1/model-routes", headers=auth,
                                json={"model_name": "x" * 200_000})
            assert r.status_code == 413
        seen = cloud.stats()
        assert seen["last_headers"]["Authorization"] == f"Bearer {CLOUD_KEY}"
        assert seen["last_body"]["model"] == "cloud-model"
    finally:
        cloud.stop()
