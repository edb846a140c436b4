"""Sleep and wake through the node's agent, state reports from agents, group following."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.support.bridge_helpers import error_of, heartbeat, seed_example, unique
from tests.support.pg import free_port

SECRET = "agent-secret-" + "a" * 24


class StandInAgent:
    """A node agent's HTTP API, as far as the bridge uses it here."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_wake = False
        self.gone = False  # the engine no longer runs: the agent refuses a sleep with 409
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SECRET}":
            return web.json_response({"error": {"code": "unauthorized", "message": "no"}},
                                     status=401)
        body = await request.json() if request.can_read_body else {}
        self.calls.append((request.path, body))
        if self.gone:
            return web.json_response({"error": {"code": "invalid_state",
                                                "message": "task t is failed; only a running "
                                                           "task can be paused"}}, status=409)
        if request.path.endswith("/wake"):
            if self.fail_wake:
                return web.json_response({"error": {"code": "engine_error",
                                                    "message": "wake_up answered 500"}},
                                         status=502)
            return web.json_response({"state": "running", "mode": "vllm",
                                      "gpu_memory_released": False, "message": "awake"})
        return web.json_response({"state": "sleeping", "mode": "vllm",
                                  "gpu_memory_released": True,
                                  "message": "asleep (vLLM sleep level 1), GPU memory released"})


@pytest.fixture
async def agent() -> AsyncIterator[StandInAgent]:
    stand_in = StandInAgent()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", stand_in.port).start()
    yield stand_in
    await runner.cleanup()


async def running_task(admin, bridge, agent: StandInAgent, **over) -> tuple[dict, Any]:
    """A group whose one task runs on a node whose agent is the stand-in."""
    node_id = unique("node")
    r = await admin.post("/users", json={"name": unique("agent"), "role": "agent"})
    agent_client = bridge.client(r.json()["token"]["token"])
    await agent_client.post("/agent/heartbeat", json=heartbeat(
        node_id, agent_url=f"http://127.0.0.1:{agent.port}", agent_secret=SECRET))
    g = (await admin.post("/task-groups", json=seed_example(**over))).json()
    bridge.sql("UPDATE tasks SET status = 'running', node_id = %s, address = '127.0.0.1:9'"
               " WHERE group_id = %s", (node_id, g["id"]))
    bridge.sql("UPDATE task_groups SET status = 'running', current_replicas = 1 WHERE id = %s",
               (g["id"],))
    return g, agent_client


async def test_sleep_then_wake(admin, bridge, agent) -> None:
    g, agent_client = await running_task(admin, bridge, agent)
    tid = g["tasks"][0]["id"]
    r = await admin.post(f"/tasks/{tid}/sleep")
    assert r.status_code == 200, r.text
    task = r.json()
    assert (task["status"], task["sleep_mode"], task["gpu_released"]) == (
        "sleeping", "vllm", True)
    assert "GPU memory released" in task["status_reason"]
    group = (await admin.get(f"/task-groups/{g['id']}")).json()
    assert group["status"] == "sleeping" and group["current_replicas"] == 0
    assert agent.calls[-1][0] == f"/v1/tasks/{tid}/sleep"

    again = await admin.post(f"/tasks/{tid}/sleep")
    assert again.status_code == 409 and error_of(again)["code"] == "invalid_state"

    r = await admin.post(f"/tasks/{tid}/wake")
    assert r.status_code == 200 and r.json()["status"] == "running"
    assert r.json()["sleep_mode"] is None and r.json()["gpu_released"] is False
    group = (await admin.get(f"/task-groups/{g['id']}")).json()
    assert group["status"] == "running" and group["current_replicas"] == 1
    trail = [e["action"] for e in (await admin.get(
        "/audit", params={"object_id": tid})).json()["items"]]
    assert trail == ["task.awake", "task.wake", "task.sleep"]
    await agent_client.aclose()


async def test_failed_wake_leaves_it_asleep(admin, bridge, agent) -> None:
    g, agent_client = await running_task(admin, bridge, agent)
    tid = g["tasks"][0]["id"]
    await admin.post(f"/tasks/{tid}/sleep")
    agent.fail_wake = True
    r = await admin.post(f"/tasks/{tid}/wake")
    assert r.status_code == 502 and error_of(r)["code"] == "agent_refused"
    assert "wake_up answered 500" in error_of(r)["message"]
    task = (await admin.get(f"/tasks/{tid}")).json()
    assert task["status"] == "sleeping" and "wake failed" in task["status_reason"]
    await agent_client.aclose()


async def test_nomad_placed_task_is_addressed_by_engine(admin, bridge, agent) -> None:
    g, agent_client = await running_task(admin, bridge, agent)
    tid = g["tasks"][0]["id"]
    # Nomad's node id in the task row; the agent reported it as its nomad_node_id
    bridge.sql("UPDATE nodes SET nomad_node_id = 'nomad-node-7' WHERE id = (SELECT node_id"
               " FROM tasks WHERE id = %s)", (tid,))
    bridge.sql("UPDATE tasks SET alloc_id = 'a1b2c3', node_id = 'nomad-node-7' WHERE id = %s",
               (tid,))
    assert (await admin.post(f"/tasks/{tid}/sleep")).status_code == 200
    path, body = agent.calls[-1]
    assert path == "/v1/sleep"
    assert body == {"task_id": tid, "address": "127.0.0.1:9", "sleep_api": "vllm",
                    "container": "engine-a1b2c3"}
    await agent_client.aclose()


async def test_gateway_account_may_wake_but_not_sleep(admin, bridge, agent) -> None:
    g, agent_client = await running_task(admin, bridge, agent)
    tid = g["tasks"][0]["id"]
    r = await admin.post("/users", json={"name": unique("gw"), "role": "gateway"})
    async with bridge.client(r.json()["token"]["token"]) as gateway:
        assert (await gateway.post(f"/tasks/{tid}/sleep")).status_code == 403
        await admin.post(f"/tasks/{tid}/sleep")
        assert (await gateway.post(f"/tasks/{tid}/wake")).status_code == 200
        assert (await gateway.get("/task-groups")).status_code == 403
    await agent_client.aclose()


async def test_unreachable_agent_is_503_and_changes_nothing(admin, bridge, agent) -> None:
    g, agent_client = await running_task(admin, bridge, agent)
    tid = g["tasks"][0]["id"]
    bridge.sql("UPDATE nodes SET agent_url = %s WHERE id = (SELECT node_id FROM tasks"
               " WHERE id = %s)", (f"http://127.0.0.1:{free_port()}", tid))
    r = await admin.post(f"/tasks/{tid}/sleep")
    assert r.status_code == 503 and error_of(r)["code"] == "agent_unavailable"
    assert (await admin.get(f"/tasks/{tid}")).json()["status"] == "running"
    await agent_client.aclose()


async def test_agent_state_reports(admin, bridge, agent) -> None:
    g, agent_client = await running_task(admin, bridge, agent)
    tid = g["tasks"][0]["id"]
    r = await agent_client.post(f"/agent/tasks/{tid}/state", json={
        "state": "sleeping", "reason": "idle for 30 minutes", "sleep_mode": "vllm",
        "gpu_memory_released": True})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["gpu_released"]) == ("sleeping", True)
    assert (await admin.get(f"/task-groups/{g['id']}")).json()["status"] == "sleeping"
    r = await agent_client.post(f"/agent/tasks/{tid}/state", json={
        "state": "failed", "reason": "engine exited", "exit_code": 137})
    assert r.json()["status"] == "failed" and "137" in r.json()["status_reason"]
    assert r.json()["address"] is None
    bad = await agent_client.post(f"/agent/tasks/{tid}/state", json={"state": "exploded"})
    assert bad.status_code == 422
    # an agent reports only tasks on its own nodes
    r = await admin.post("/users", json={"name": unique("agent"), "role": "agent"})
    async with bridge.client(r.json()["token"]["token"]) as stranger:
        r = await stranger.post(f"/agent/tasks/{tid}/state", json={"state": "running"})
        assert r.status_code == 403
    await agent_client.aclose()


async def test_wake_refused_when_released_gpus_were_given_away(admin, bridge, agent) -> None:
    g, agent_client = await running_task(admin, bridge, agent)
    tid = g["tasks"][0]["id"]
    bridge.sql("UPDATE tasks SET gpu_id = '0' WHERE id = %s", (tid,))
    assert (await admin.post(f"/tasks/{tid}/sleep")).status_code == 200  # releases GPU 0
    other = (await admin.post("/task-groups", json=seed_example())).json()
    bridge.sql("UPDATE tasks SET status = 'running', gpu_id = '0', node_id = (SELECT node_id"
               " FROM tasks WHERE id = %s) WHERE group_id = %s", (tid, other["id"]))
    r = await admin.post(f"/tasks/{tid}/wake")
    assert r.status_code == 409 and error_of(r)["details"]["gpus"] == ["0"]
    assert (await admin.get(f"/tasks/{tid}")).json()["status"] == "sleeping"
    await agent_client.aclose()


async def test_sleep_of_an_engine_that_is_gone_is_409(admin, bridge, agent) -> None:
    g, agent_client = await running_task(admin, bridge, agent)
    tid = g["tasks"][0]["id"]
    agent.gone = True
    r = await admin.post(f"/tasks/{tid}/sleep")
    assert r.status_code == 409 and error_of(r)["code"] == "invalid_state", r.text
    assert "only a running task" in error_of(r)["message"]
    await agent_client.aclose()
