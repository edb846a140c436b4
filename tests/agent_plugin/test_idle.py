"""Idle detection with a driven clock against real engines: the vLLM-like engine double,
a plain file server whose /metrics we rewrite, and the real llama.cpp server (which has no
metrics, so it is never put to sleep)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent_plugin.executor import TaskSpec, TaskState
from agent_plugin.idle import IdleWatcher
from agent_plugin.metrics import parse_samples
from agent_plugin.tasks import NodeTasks, TaskMeta
from tests.support.agent_standins import BridgeStandIn, double_task, free_port
from tests.support.model_factory import smollm_gguf

VLLM_METRICS = """# HELP vllm:num_requests_running Number of requests currently running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{model_name="m a",engine="0"}} {running}
vllm:num_requests_waiting{{model_name="m a",engine="0"}} 0.0
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{{model_name="m a",engine="0"}} {tokens}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield http


async def running(tasks: NodeTasks, spec: TaskSpec, meta: TaskMeta) -> None:
    await tasks.start(spec, meta)
    async with asyncio.timeout(60):
        await tasks.executor.wait_for(spec.task_id, TaskState.RUNNING)


class TestMetrics:
    def test_sums_over_labels_and_ignores_the_rest(self) -> None:
        text = ('# HELP x:y help text {with braces}\n'
                'x:y{model="a b",note="say \\"hi\\" }"} 2\n'
                'x:y{model="c"} 3.5 1712345678000\n'
                'x:y_total 99\nx:z NaN\nx:w{a="1"} not-a-number\n')
        assert parse_samples(text, {"x:y", "x:z", "x:w"}) == {"x:y": 5.5}


class TestIdleWatcher:
    async def test_engine_double_sleeps_after_the_whole_timeout(
            self, node_tasks: NodeTasks, bridge_standin: BridgeStandIn,
            client: httpx.AsyncClient, tmp_path: Path) -> None:
        clock = Clock()
        watcher = IdleWatcher(node_tasks, client, clock=clock)
        spec = double_task(tmp_path, "task-idle", free_port())
        url = f"http://127.0.0.1:{spec.port}"
        await running(node_tasks, spec, TaskMeta("vllm", "vllm", idle_timeout_minutes=1))
        assert await watcher.tick() == []
        assert watcher.notes["task-idle"] == "idle for 0.0 of 1 min"

        # a request in flight: busy, and idleness starts over once it is done
        await client.post(url + "/_control", json={"latency_s": 2})
        request = asyncio.create_task(client.post(url + "/v1/chat/completions", timeout=30,
                                                  json={"model": "double-model",
                                                        "messages": []}))
        for _ in range(200):
            if (await client.get(url + "/_stats")).json()["running"]:
                break
            await asyncio.sleep(0.05)
        clock.now += 50
        assert await watcher.tick() == []
        assert watcher.notes["task-idle"].startswith("busy: num_requests_running 1")
        assert (await request).status_code == 200
        clock.now += 10
        await watcher.tick()  # idle from here
        clock.now += 59
        assert await watcher.tick() == []
        assert watcher.notes["task-idle"] == "idle for 1.0 of 1 min"
        assert node_tasks.statuses_json(watcher.notes)[0]["idle"] == "idle for 1.0 of 1 min"
        clock.now += 1
        assert await watcher.tick() == ["task-idle"]

        assert (await client.get(url + "/is_sleeping")).json() == {"is_sleeping": True}
        status = node_tasks.statuses_json(watcher.notes)[0]
        assert status["state"] == "sleeping" and status["sleep"]["gpu_memory_released"]
        await bridge_standin.until(lambda: "sleeping" in bridge_standin.states_of("task-idle"))
        report = bridge_standin.states[-1][1]
        assert (report["sleep_mode"], report["gpu_memory_released"]) == ("vllm", True)
        assert report["reason"].startswith("idle for 1 min (no running or waiting requests)")

        assert await watcher.tick() == [] and "task-idle" not in watcher.notes  # asleep
        await node_tasks.wake("task-idle")
        clock.now += 3600
        await watcher.tick()  # awake again: idleness counts from now, not from before
        assert watcher.notes["task-idle"] == "idle for 0.0 of 1 min"

    async def test_a_sleep_and_wake_between_polls_starts_idleness_over(
            self, node_tasks: NodeTasks, client: httpx.AsyncClient, tmp_path: Path) -> None:
        clock = Clock()
        watcher = IdleWatcher(node_tasks, client, clock=clock)
        spec = double_task(tmp_path, "task-woken", free_port())
        await running(node_tasks, spec, TaskMeta("vllm", "vllm", idle_timeout_minutes=1))
        await watcher.tick()
        await node_tasks.sleep("task-woken")  # the bridge's sleep and wake, between polls
        await node_tasks.wake("task-woken")
        clock.now += 3600
        assert await watcher.tick() == []  # not slept right after being woken
        assert watcher.notes["task-woken"] == "idle for 0.0 of 1 min"

    async def test_counters_show_requests_between_polls_and_failures_are_noted(
            self, node_tasks: NodeTasks, client: httpx.AsyncClient, tmp_path: Path) -> None:
        # a real process serving a file as /metrics, which the test rewrites
        served = tmp_path / "served"
        served.mkdir()
        metrics = served / "metrics"
        metrics.write_text(VLLM_METRICS.format(running=0, tokens=10))
        port = free_port()
        spec = TaskSpec(task_id="task-files", argv=(
            sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
            "--directory", str(served)), port=port, log_path=tmp_path / "files.log")
        clock = Clock()
        watcher = IdleWatcher(node_tasks, client, clock=clock)
        await running(node_tasks, spec, TaskMeta("vllm", "vllm", idle_timeout_minutes=2))
        await watcher.tick()
        clock.now += 100
        metrics.write_text(VLLM_METRICS.format(running=0, tokens=25))  # served in between
        await watcher.tick()
        assert watcher.notes["task-files"].endswith("requests were served since the last poll")
        clock.now += 1
        await watcher.tick()  # idle from here
        assert watcher.notes["task-files"] == "idle for 0.0 of 2 min"
        clock.now += 119
        await watcher.tick()
        assert watcher.notes["task-files"] == "idle for 2.0 of 2 min"  # 119 s: not yet
        clock.now += 1
        assert await watcher.tick() == []  # due, but this server has no vLLM sleep API
        assert watcher.notes["task-files"].startswith("auto-sleep failed: ")
        assert "--enable-sleep-mode" in watcher.notes["task-files"]
        assert node_tasks.statuses_json(watcher.notes)[0]["state"] == "running"
        clock.now += 60
        await watcher.tick()  # tries again only after another full timeout
        assert watcher.notes["task-files"] == "idle for 1.0 of 2 min"

        metrics.unlink()
        await watcher.tick()
        assert "not auto-slept" in watcher.notes["task-files"]

    async def test_engines_that_cannot_be_watched(self, node_tasks: NodeTasks,
                                                  client: httpx.AsyncClient,
                                                  tmp_path: Path) -> None:
        clock = Clock()
        watcher = IdleWatcher(node_tasks, client, clock=clock)
        await running(node_tasks, double_task(tmp_path, "task-tf", free_port()),
                      TaskMeta("transformers", None, idle_timeout_minutes=5))
        await running(node_tasks, double_task(tmp_path, "task-never", free_port()),
                      TaskMeta("vllm", "vllm", idle_timeout_minutes=0))
        clock.now += 86_400
        assert await watcher.tick() == []
        assert watcher.notes == {
            "task-tf": "not auto-slept: no idle signal is known for engine transformers"}
        never = next(t for t in node_tasks.statuses_json(watcher.notes)
                     if t["task_id"] == "task-never")
        assert never["idle"] == "auto-sleep off (idle_timeout_minutes is 0)"

    @pytest.mark.slow
    @pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                        reason="the engine is missing: pip install 'llama-cpp-python[server]'")
    async def test_llama_cpp_python_is_never_auto_slept(
            self, node_tasks: NodeTasks, client: httpx.AsyncClient, tmp_path: Path) -> None:
        port = free_port()
        spec = TaskSpec(task_id="task-llama-idle", argv=(
            sys.executable, "-m", "llama_cpp.server", "--model", str(smollm_gguf()),
            "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512"), port=port,
            log_path=tmp_path / "llama.log", ready_paths=("/v1/models",))
        clock = Clock()
        watcher = IdleWatcher(node_tasks, client, clock=clock)
        await running(node_tasks, spec, TaskMeta("llamacpp", None, idle_timeout_minutes=1))
        await watcher.tick()
        clock.now += 7200
        assert await watcher.tick() == []
        note = node_tasks.statuses_json(watcher.notes)[0]["idle"]
        assert note.startswith("not auto-slept: the engine serves no ")
        assert "idleness cannot be seen" in note
