"""The agent's HTTP API, served by a real ``Agent`` on loopback: the secret, starting and
stopping real engines, sleep and wake of its own engines and of engines Nomad placed (by
address, or by container through a Docker stand-in), and the error shape."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_plugin.executor.local import group_members
from agent_plugin.serve import Agent
from agent_plugin.settings import AgentSettings
from tests.support.agent_standins import (
    BridgeStandIn,
    DockerStandIn,
    EngineDouble,
    double_env,
    engine_double_argv,
    free_port,
)


@pytest.fixture
async def docker(short_dir: Path) -> AsyncIterator[DockerStandIn]:
    daemon = DockerStandIn(short_dir / "docker.sock", {"engine-alloc1": "running"})
    await daemon.start()
    yield daemon
    await daemon.stop()


@pytest.fixture
async def agent(agent_settings: Callable[..., AgentSettings], bridge_standin: BridgeStandIn,
                docker: DockerStandIn) -> AsyncIterator[Agent]:
    settings = agent_settings(bridge_url=bridge_standin.url, node_token=bridge_standin.token,
                              heartbeat_seconds=0.3, report_retry_seconds=0.05,
                              docker_host=f"unix://{docker.unix_path}")
    running = Agent(settings, base_env=dict(os.environ))
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def api(agent: Agent) -> AsyncIterator[httpx.AsyncClient]:
    assert agent.url and agent.identity
    async with httpx.AsyncClient(base_url=agent.url, trust_env=False, timeout=30, headers={
            "Authorization": f"Bearer {agent.identity.secret}"}) as client:
        yield client


def start_body(task_id: str, port: int, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task_id": task_id, "argv": engine_double_argv(port), "env": double_env(),
        "port": port, "gpu_vendor": None, "gpu_ids": [],
        "restart": {"attempts": 1, "delay_seconds": 0.5, "mode": "fail"},
        "health_path": "/health", "engine": "vllm", "sleep_api": "vllm",
        "idle_timeout_minutes": 0}
    body.update(over)
    return body


async def status_of(api: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    tasks = (await api.get("/v1/status")).json()["tasks"]
    found: dict[str, Any] = next(t for t in tasks if t["task_id"] == task_id)
    return found


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


class TestAuth:
    async def test_the_secret_is_required(self, agent: Agent, api: httpx.AsyncClient) -> None:
        async with httpx.AsyncClient(base_url=str(agent.url), trust_env=False) as stranger:
            for headers in ({}, {"Authorization": "Bearer wrong"},
                            {"Authorization": f"Basic {agent.identity.secret}"}):  # type: ignore[union-attr]
                refused = await stranger.get("/v1/status", headers=headers)
                assert error(refused) == (401, "unauthorized")
                assert refused.headers["WWW-Authenticate"] == "Bearer"
            assert error(await stranger.post("/v1/tasks", json={})) == (401, "unauthorized")
        status = (await api.get("/v1/status")).json()
        assert status == {"node_id": agent.identity.node_id, "tasks": []}  # type: ignore[union-attr]
        assert error(await api.get("/v1/nothing")) == (404, "not_found")
        assert error(await api.put("/v1/tasks")) == (405, "method_not_allowed")
        assert error(await api.post("/v1/tasks", content=b"x" * (2 * 1024 * 1024))) == (
            413, "body_too_large")


class TestOwnEngines:
    async def test_start_sleep_wake_stop(self, api: httpx.AsyncClient,
                                         bridge_standin: BridgeStandIn) -> None:
        port = free_port()
        started = await api.post("/v1/tasks", json=start_body("task-api", port))
        assert started.status_code == 202
        assert started.json()["task_id"] == "task-api" and started.json()["port"] == port
        again = await api.post("/v1/tasks", json=start_body("task-api", port))
        assert error(again) == (409, "task_exists")
        await bridge_standin.until(lambda: "running" in bridge_standin.states_of("task-api"))
        status = await status_of(api, "task-api")
        assert (status["state"], status["engine"], status["sleep_api"]) == (
            "running", "vllm", "vllm")
        assert status["address"] == f"127.0.0.1:{port}"

        asleep = await api.post("/v1/tasks/task-api/sleep")
        assert asleep.status_code == 200
        assert asleep.json() | {"message": ""} == {
            "task_id": "task-api", "state": "sleeping", "mode": "vllm",
            "gpu_memory_released": True, "message": ""}
        assert (await status_of(api, "task-api"))["state"] == "sleeping"
        awake = (await api.post("/v1/tasks/task-api/wake")).json()
        assert (awake["state"], awake["gpu_memory_released"]) == ("running", False)

        pid = status["pid"]
        stopped = await api.delete("/v1/tasks/task-api")
        assert stopped.status_code == 200 and stopped.json()["state"] == "completed"
        assert group_members(pid) == []
        assert (await api.delete("/v1/tasks/task-api")).json()["state"] == "completed"
        assert error(await api.delete("/v1/tasks/task-gone")) == (404, "unknown_task")
        assert error(await api.post("/v1/tasks/task-gone/sleep")) == (404, "unknown_task")
        assert error(await api.post("/v1/tasks/task-api/sleep")) == (409, "invalid_state")
        await bridge_standin.until(lambda: "completed" in bridge_standin.states_of("task-api"))
        # sleep and wake were asked by the bridge: answered above, not reported again
        assert bridge_standin.states_of("task-api") == ["starting", "running", "completed"]

    async def test_refusals_say_why(self, api: httpx.AsyncClient) -> None:
        port = free_port()
        cases = {
            "task_id: String should match pattern": start_body("../etc/passwd", port),
            "restart.delay: Extra inputs": start_body("t1", port, restart={"delay": 2}),
            "gpu_ids need a gpu_vendor": start_body("t1", port, gpu_ids=[0]),
            "sleep_api: Input should be 'vllm' or 'sglang'": start_body(
                "t1", port, sleep_api="docker"),
            "argv: List should have at least 1 item": start_body("t1", port, argv=[]),
        }
        for words, body in cases.items():
            refused = await api.post("/v1/tasks", json=body)
            assert error(refused) == (400, "invalid_request"), words
            assert words in refused.json()["error"]["message"], refused.json()
        assert error(await api.post("/v1/tasks", content=b"{not json")) == (
            400, "invalid_request")
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = start_body("t1", taken.getsockname()[1])
            refused = await api.post("/v1/tasks", json=busy)
            assert error(refused) == (409, "spawn_failed")
            assert "already in use" in refused.json()["error"]["message"]
        missing = await api.post("/v1/tasks", json=start_body(
            "t2", port, argv=["/nonexistent/llama-server"]))
        assert error(missing) == (409, "spawn_failed")
        assert (await api.get("/v1/status")).json()["tasks"] == []


class TestEnginesNomadPlaced:
    async def test_by_address_and_by_container(self, api: httpx.AsyncClient,
                                               docker: DockerStandIn,
                                               bridge_standin: BridgeStandIn) -> None:
        async with EngineDouble(free_port()) as engine:
            body = {"task_id": "task-nomad-r0", "address": engine.address,
                    "sleep_api": "vllm", "container": "engine-alloc1"}
            asleep = (await api.post("/v1/sleep", json=body)).json()
            assert (asleep["state"], asleep["mode"], asleep["gpu_memory_released"]) == (
                "sleeping", "vllm", True)
            assert (await engine.stats())["sleeping"] is True
            assert (await api.post("/v1/wake", json=body)).json()["state"] == "running"
            assert (await engine.stats())["sleeping"] is False
            assert docker.calls == []  # the engine's own API was used, not a pause

        paused = (await api.post("/v1/sleep", json=body | {"sleep_api": None})).json()
        assert (paused["mode"], paused["gpu_memory_released"]) == ("paused", False)
        assert "GPU memory kept" in paused["message"]
        assert docker.containers["engine-alloc1"] == "paused"
        assert (await api.post("/v1/wake", json=body | {"sleep_api": None})).json()[
            "state"] == "running"
        assert docker.containers["engine-alloc1"] == "running"

        gone = await api.post("/v1/sleep", json=body)  # the engine double has exited
        assert error(gone) == (502, "engine_unreachable")
        nothing = await api.post("/v1/sleep", json={"task_id": "t", "address": "127.0.0.1:9"})
        assert error(nothing) == (409, "sleep_unsupported")
        odd = await api.post("/v1/sleep", json={"task_id": "t", "container": "a/../b"})
        assert error(odd) == (400, "invalid_request")
        assert bridge_standin.states == []


class TestAgent:
    async def test_heartbeat_hands_the_bridge_what_it_needs(
            self, agent: Agent, bridge_standin: BridgeStandIn) -> None:
        await bridge_standin.until(lambda: len(bridge_standin.heartbeats) >= 2)
        first, second = bridge_standin.heartbeats[:2]
        assert first["agent_url"] == agent.url and second["agent_secret"] is None
        async with httpx.AsyncClient(base_url=first["agent_url"], trust_env=False) as bridge:
            answer = await bridge.get("/v1/status", headers={
                "Authorization": f"Bearer {first['agent_secret']}"})
        assert answer.json()["node_id"] == first["node_id"]

    async def test_stop_stops_every_engine(self, agent_settings: Callable[..., AgentSettings],
                                           bridge_standin: BridgeStandIn) -> None:
        settings = agent_settings(bridge_url=bridge_standin.url,
                                  node_token=bridge_standin.token, report_retry_seconds=0.05)
        agent = Agent(settings, base_env=dict(os.environ))
        await agent.start()
        assert agent.url and agent.identity
        port = free_port()
        async with httpx.AsyncClient(base_url=agent.url, trust_env=False, headers={
                "Authorization": f"Bearer {agent.identity.secret}"}) as api:
            await api.post("/v1/tasks", json=start_body("task-last", port))
            await bridge_standin.until(
                lambda: "running" in bridge_standin.states_of("task-last"))
            pid = (await status_of(api, "task-last"))["pid"]
        await agent.stop()
        assert group_members(pid) == []
        assert bridge_standin.states_of("task-last")[-1] == "completed"  # flushed at stop
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(trust_env=False) as late:
                await late.get(agent.url + "/v1/status")

    async def test_taken_port_fails_start_cleanly(
            self, agent_settings: Callable[..., AgentSettings]) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            agent = Agent(agent_settings(agent_listen=f"127.0.0.1:{taken.getsockname()[1]}"))
            with pytest.raises(OSError):
                await agent.start()
        assert sys.modules["agent_plugin.serve"]  # and nothing is left running to stop
