"""Engine load for the autoscaler, read from real engine processes: the vLLM-like engine
double (its /metrics), and a missing reason for an engine without metrics; then sent with
the heartbeat and accepted by the bridge's schema."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent_plugin.engine_metrics import EngineMetricsWatcher, scrape
from agent_plugin.errors import SleepUnsupported
from agent_plugin.executor import TaskState
from agent_plugin.tasks import NodeTasks, TaskMeta
from bridge.api import schemas as bridge_schemas
from tests.support.agent_standins import double_task, free_port


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield http


async def test_running_engines_are_read_under_common_names(
        node_tasks: NodeTasks, client: httpx.AsyncClient, tmp_path: Path) -> None:
    spec = double_task(tmp_path, "task-load", free_port())
    await node_tasks.start(spec, TaskMeta("vllm", "vllm"))
    async with asyncio.timeout(60):
        await node_tasks.executor.wait_for(spec.task_id, TaskState.RUNNING)
    url = f"http://127.0.0.1:{spec.port}"
    await client.post(url + "/_control", json={"latency_s": 3})
    request = asyncio.create_task(client.post(url + "/v1/chat/completions", timeout=30, json={
        "model": "double-model", "messages": []}))
    for _ in range(200):
        if (await client.get(url + "/_stats")).json()["running"]:
            break
        await asyncio.sleep(0.05)
    watcher = EngineMetricsWatcher(node_tasks.running_engines, client)
    await watcher.tick()
    reading = watcher.latest["task-load"]
    assert reading["metrics"] == {"running": 1.0, "waiting": 0.0} and reading["at"] > 0
    assert (await request).status_code == 200
    # what the heartbeat carries is what the bridge accepts
    taken = bridge_schemas.EngineReadingIn.model_validate(reading)
    assert taken.metrics == {"running": 1.0, "waiting": 0.0}


async def test_an_engine_without_metrics_is_missing_with_the_reason(
        client: httpx.AsyncClient) -> None:
    with pytest.raises(SleepUnsupported, match="no engine metrics are known for mindie"):
        await scrape(client, "127.0.0.1:1", "mindie")
    watcher = EngineMetricsWatcher(lambda: [("task-x", "llamacpp", "127.0.0.1:1")], client)
    await watcher.tick()
    assert "did not answer" in watcher.latest["task-x"]["missing"]


def test_cpu_use_between_two_readings(tmp_path: Path) -> None:
    from agent_plugin.cpu import CpuMeter

    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n")
    meter = CpuMeter(stat)
    stat.write_text("cpu  200 0 200 1200 200 0 0 0 0 0\n")  # busy +200 of +800
    assert meter.percent() == 25.0
    assert meter.percent() is None  # nothing moved since
    assert CpuMeter(tmp_path / "absent").percent() is None
