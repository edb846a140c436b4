"""The bridge's typed ``AgentClient`` against a real agent on loopback: every call the bridge
makes (start, status, sleep, wake, stop, and sleep/wake of an engine Nomad placed) with the
shapes the bridge builds, a real engine double as the engine, and the agent's refusals
arriving as the bridge's errors."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agent_plugin.serve import Agent
from agent_plugin.settings import AgentSettings
from bridge.agents.client import AgentClient
from bridge.agents.shapes import AgentStatus, RemoteEngine, RestartPolicy, StartTask
from bridge.errors import AgentRefused, AgentUnavailable
from tests.support.agent_helpers import GPU_FIXTURES
from tests.support.agent_standins import (
    EngineDouble,
    double_env,
    engine_double_argv,
    free_port,
)


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    (tmp_path / "models").mkdir()
    settings = AgentSettings(
        home=tmp_path / "home", model_roots=(tmp_path / "models",), gpu_vendors=(),
        gpu_inventory=GPU_FIXTURES / "inventory_dev.json", tool_path=str(tmp_path),
        agent_listen="127.0.0.1:0", nomad_addr=None, nomad_token=None, bridge_url=None,
        docker_host=f"unix://{tmp_path}/no-docker.sock", idle_poll_seconds=3600.0,
        stop_grace_seconds=5.0)
    running = Agent(settings, base_env=dict(os.environ))
    await running.start()
    yield running
    await running.stop()


@pytest.fixture
async def client() -> AsyncIterator[AgentClient]:
    agents = AgentClient(timeout=30)
    yield agents
    await agents.close()


async def until(read: Callable[[], Awaitable[AgentStatus]],
                check: Callable[[AgentStatus], bool]) -> AgentStatus:
    for _ in range(400):
        status = await read()
        if check(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached; last status: {status}")


def states(status: AgentStatus) -> dict[str, str]:
    return {t.task_id: t.state for t in status.tasks}


async def test_start_status_sleep_wake_stop(agent: Agent, client: AgentClient) -> None:
    assert agent.url and agent.identity
    url, secret = agent.url, agent.identity.secret
    port = free_port()
    start = StartTask(task_id="task-c1", argv=tuple(engine_double_argv(port)), port=port,
                      env=double_env(), gpu_vendor="nvidia", gpu_ids=("0",),
                      restart=RestartPolicy(attempts=1, delay_seconds=0.5),
                      engine="vllm", sleep_api="vllm", idle_timeout_minutes=30)
    await client.start_task(url, secret, start)
    with pytest.raises(AgentRefused) as twice:
        await client.start_task(url, secret, start)
    assert twice.value.details["agent_code"] == "task_exists"

    status = await until(lambda: client.status(url, secret),
                         lambda s: states(s).get("task-c1") == "running")
    assert status.node_id == agent.identity.node_id
    assert status.live_task_ids() == {"task-c1"}

    asleep = await client.sleep(url, secret, "task-c1")
    assert (asleep.mode, asleep.gpu_memory_released) == ("vllm", True) and asleep.message
    assert states(await client.status(url, secret))["task-c1"] == "sleeping"
    awake = await client.wake(url, secret, "task-c1")
    assert awake.gpu_memory_released is False

    await client.stop_task(url, secret, "task-c1")
    assert (await client.status(url, secret)).live_task_ids() == set()
    with pytest.raises(AgentRefused) as gone:
        await client.sleep(url, secret, "task-c1")
    assert gone.value.details["agent_code"] == "invalid_state"


async def test_engines_nomad_placed(agent: Agent, client: AgentClient) -> None:
    assert agent.url and agent.identity
    url, secret = agent.url, agent.identity.secret
    async with EngineDouble(free_port()) as engine:
        target = RemoteEngine(task_id="task-nomad-r0", address=engine.address,
                              sleep_api="vllm", container=None)
        asleep = await client.sleep(url, secret, target)
        assert (asleep.mode, asleep.gpu_memory_released) == ("vllm", True)
        stats: dict[str, Any] = await engine.stats()
        assert stats["sleeping"] is True
        await client.wake(url, secret, target)
        assert (await engine.stats())["sleeping"] is False


async def test_refusals_and_silence_are_the_bridges_errors(agent: Agent,
                                                          client: AgentClient) -> None:
    assert agent.url
    with pytest.raises(AgentRefused) as refused:
        await client.status(agent.url, "not-the-secret")
    assert refused.value.details == {"agent_status": 401, "agent_code": "unauthorized"}
    with pytest.raises(AgentUnavailable):
        await client.status(f"http://127.0.0.1:{free_port()}", "any")
