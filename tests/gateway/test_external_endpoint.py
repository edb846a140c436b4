"""A model that exists only as an external route is callable: the route has an endpoint of
its own (made with the route through the REST API), whose keys reach that route only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.bridge_helpers import seed_example, unique
from tests.support.gateway_harness import Double, Gateway


@pytest.fixture
async def procs(bridge: Any, tmp_path: Path) -> AsyncIterator[tuple[Double, Gateway]]:
    cloud = await asyncio.to_thread(Double, tmp_path, "cloud", "cloud-model")
    gateway = await asyncio.to_thread(Gateway, tmp_path, bridge.db_url)
    try:
        yield cloud, gateway
    finally:
        gateway.stop()
        cloud.stop()


async def test_external_route_has_an_endpoint_and_keys(admin: Any, procs: Any) -> None:
    cloud, gateway = procs
    model = unique("only-cloud")
    r = await admin.post("/model-routes", json={
        "model_name": model, "upstream_url": cloud.url + "/v1", "upstream_model": "cloud-model"})
    assert r.status_code == 201, r.text
    endpoint_id = r.json()["endpoint_id"]
    assert endpoint_id
    r = await admin.post(f"/endpoints/{endpoint_id}/api-keys", json={"name": "ci"})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    service = (await admin.post("/task-groups", json=seed_example())).json()
    other_key = service["api_key"]["key"]

    async with httpx.AsyncClient(base_url=gateway.url + "/v1", timeout=30) as http:
        async def chat(key: str, name: str) -> httpx.Response:
            return await http.post("/chat/completions", headers={
                "Authorization": f"Bearer {key}"}, json={
                "model": name, "messages": [{"role": "user", "content": "hi"}]})

        for _ in range(100):  # the gateway reads routes and keys within about a second
            r = await chat(key, model)
            if r.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert r.status_code == 200, r.text
        assert r.headers["x-heteroflow-backend"] == "external"
        assert "cloud-" in r.json()["choices"][0]["message"]["content"]
        models = (await http.get("/models", headers={"Authorization": f"Bearer {key}"})).json()
        assert [m["id"] for m in models["data"]] == [model]
        # Its keys reach its route only; other keys do not reach it.
        assert (await chat(key, service["model_name"])).status_code in (403, 404)
        assert (await chat(other_key, model)).status_code == 403


async def test_a_routes_first_byte_bound_is_set_through_the_api(admin: Any) -> None:
    r = await admin.post("/model-routes", json={
        "model_name": unique("bounded"), "upstream_url": "http://127.0.0.1:9/v1",
        "first_byte_timeout_s": 2.5})
    assert r.status_code == 201, r.text
    assert r.json()["first_byte_timeout_s"] == 2.5
    r = await admin.put(f"/model-routes/{r.json()['id']}", json={"first_byte_timeout_s": 90})
    assert r.status_code == 200, r.text
    assert r.json()["first_byte_timeout_s"] == 90
    r = await admin.post("/model-routes", json={
        "model_name": unique("bounded"), "upstream_url": "http://127.0.0.1:9/v1",
        "first_byte_timeout_s": 0})
    assert r.status_code in (400, 422), r.text
