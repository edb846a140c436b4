"""A task leaves every gateway's pool before its engine is paused, not after: the bridge
marks it sleeping, gives the gateways a refresh to drop it, and only then asks its agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.bridge.test_api_nodes import heartbeat
from tests.support.bridge_helpers import seed_example, unique
from tests.support.gateway_harness import Double, Gateway
from tests.support.pg import free_port

SECRET = "agent-secret-" + "b" * 24


class PausingAgent:
    """A node agent that pauses the engine (as SIGSTOP would: it hangs) when told to sleep,
    noting how many usable backends the gateway still had at that moment."""

    def __init__(self, engine: Double, gateway: Gateway) -> None:
        self.engine = engine
        self.gateway = gateway
        self.group_id = ""
        self.usable_at_pause: list[int] = []
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.Response:
        async with httpx.AsyncClient(timeout=10) as http:
            health = (await http.get(self.gateway.url + "/gateway/health")).json()
            self.usable_at_pause.append(
                int(health["pools"].get(self.group_id, {}).get("usable", 0)))
            await http.post(self.engine.url + "/_control", json={"mode": "hang"})
        return web.json_response({"state": "sleeping", "mode": "paused",
                                  "gpu_memory_released": False, "message": "paused"})


@pytest.fixture
async def procs(bridge: Any, tmp_path: Path) -> AsyncIterator[tuple[Double, Gateway]]:
    engine = await asyncio.to_thread(Double, tmp_path, "drain", "drain")
    gateway = await asyncio.to_thread(Gateway, tmp_path, bridge.db_url,
                                      HETEROFLOW_REFRESH_INTERVAL_S="1")
    try:
        yield engine, gateway
    finally:
        gateway.stop()
        engine.stop()


async def test_the_pool_drops_a_task_before_its_engine_pauses(admin: Any, bridge: Any,
                                                              procs: Any) -> None:
    engine, gateway = procs
    agent = PausingAgent(engine, gateway)
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", agent.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", agent.port).start()
    try:
        node_id = unique("node")
        r = await admin.post("/users", json={"name": unique("agent"), "role": "agent"})
        agent_client = bridge.client(r.json()["token"]["token"])
        await agent_client.post("/agent/heartbeat", json=heartbeat(
            node_id, agent_url=f"http://127.0.0.1:{agent.port}", agent_secret=SECRET))
        g = (await admin.post("/task-groups", json=seed_example(model_name="drain"))).json()
        agent.group_id = g["id"]
        bridge.sql("UPDATE tasks SET status = 'running', node_id = %s, address = %s"
                   " WHERE group_id = %s", (node_id, engine.address, g["id"]))
        bridge.sql("UPDATE task_groups SET status = 'running', current_replicas = 1"
                   " WHERE id = %s", (g["id"],))
        async with httpx.AsyncClient(timeout=60) as http:
            async def usable() -> int:
                health = (await http.get(gateway.url + "/gateway/health")).json()
                return int(health["pools"].get(g["id"], {}).get("usable", 0))

            for _ in range(600):
                if await usable() == 1:
                    break
                await asyncio.sleep(0.1)
            assert await usable() == 1, "the task never became usable in the gateway"
            r = await admin.post(f"/tasks/{g['tasks'][0]['id']}/sleep")
            assert r.status_code == 200, r.text
            assert agent.usable_at_pause == [0]  # out of the pool before the pause
            # A request right after the sleep is not sent to the paused engine (where it
            # would hang): the model is asleep, so the gateway tries to wake it instead.
            key = g["api_key"]["key"]
            r = await http.post(gateway.url + "/v1/chat/completions", json={
                "model": "drain", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] in ("wake_failed", "model_waking")
            assert engine.stats()["requests"] == 0
    finally:
        await runner.cleanup()
