"""Sleep and wake drivers against real servers: the vLLM-like engine double (a real
process), an SGLang stand-in, a Docker Engine API stand-in on a unix socket, and the
executor's SIGSTOP/SIGCONT of real process groups (the real llama.cpp server included)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from agent_plugin.docker import DockerClient
from agent_plugin.engines import ENGINE_PROBES, engines_in_images, usable_engines
from agent_plugin.errors import (
    EngineRefused,
    EngineUnreachable,
    SleepUnsupported,
    UnknownTask,
)
from agent_plugin.executor import Executor, TaskSpec, TaskState
from agent_plugin.lifecycle import Sleepers, SleepTarget
from agent_plugin.lifecycle.pause import DockerPause, ExecutorPause
from agent_plugin.lifecycle.sglang import SglangSleep
from agent_plugin.lifecycle.vllm import VllmSleep
from agent_plugin.tasks import NodeTasks, TaskMeta
from tests.support.agent_helpers import settles_in
from tests.support.agent_standins import (
    BridgeStandIn,
    DockerStandIn,
    EngineDouble,
    SglangStandIn,
    double_task,
    free_port,
)
from tests.support.model_factory import smollm_gguf


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False) as http:
        yield http


@pytest.fixture
async def sglang() -> AsyncIterator[SglangStandIn]:
    server = SglangStandIn()
    await server.start()
    yield server
    await server.stop()


class TestVllm:
    async def test_sleep_and_wake_are_checked_and_idempotent(
            self, client: httpx.AsyncClient) -> None:
        driver = VllmSleep(client, timeout_s=10)
        async with EngineDouble(free_port()) as engine:
            target = SleepTarget("task-v", engine.address)
            asleep = await driver.sleep(target)
            assert (asleep.mode, asleep.gpu_memory_released, asleep.changed) == (
                "vllm", True, True)
            assert "GPU memory released" in asleep.message
            assert (await engine.stats())["sleeping"] is True
            assert not (await driver.sleep(target)).changed
            awake = await driver.wake(target)
            assert awake.changed and not awake.gpu_memory_released
            assert (await engine.stats())["sleeping"] is False
            assert not (await driver.wake(target)).changed

    async def test_an_engine_without_sleep_mode_says_how_to_start_it(
            self, client: httpx.AsyncClient, sglang: SglangStandIn) -> None:
        with pytest.raises(SleepUnsupported, match="--enable-sleep-mode"):
            await VllmSleep(client, 5).sleep(SleepTarget("task-v", sglang.address))

    async def test_an_engine_that_is_gone(self, client: httpx.AsyncClient) -> None:
        with pytest.raises(EngineUnreachable, match="ConnectError"):
            await VllmSleep(client, 5).sleep(SleepTarget("t", f"127.0.0.1:{free_port()}"))
        with pytest.raises(SleepUnsupported, match="no address"):
            await VllmSleep(client, 5).sleep(SleepTarget("t", None))


class TestSglang:
    async def test_release_and_resume_when_idle(self, client: httpx.AsyncClient,
                                                sglang: SglangStandIn) -> None:
        driver, target = SglangSleep(client, 5), SleepTarget("task-s", sglang.address)
        asleep = await driver.sleep(target)
        assert sglang.released and asleep.gpu_memory_released and asleep.mode == "sglang"
        await driver.wake(target)
        assert not sglang.released and sglang.calls == ["release", "resume"]

    async def test_refused_while_busy(self, client: httpx.AsyncClient,
                                      sglang: SglangStandIn) -> None:
        sglang.running = 2
        with pytest.raises(EngineRefused, match=r"only when idle.*num_running_reqs 2"):
            await SglangSleep(client, 5).sleep(SleepTarget("task-s", sglang.address))
        assert sglang.calls == []

    async def test_without_metrics_sglang_decides(self, client: httpx.AsyncClient) -> None:
        bare = SglangStandIn(metrics=False)
        await bare.start()
        try:
            await SglangSleep(client, 5).sleep(SleepTarget("task-s", bare.address))
            assert bare.released
        finally:
            await bare.stop()


class TestDocker:
    async def test_pause_and_unpause(self, short_dir: Path) -> None:
        daemon = DockerStandIn(short_dir / "docker.sock",
                               {"engine-abc": "running", "engine-old": "exited"})
        await daemon.start()
        docker = DockerClient(short_dir / "docker.sock")
        driver = DockerPause(docker)
        target = SleepTarget("task-d", None, container="engine-abc")
        try:
            assert docker.present() and await docker.ping()
            asleep = await driver.sleep(target)
            assert daemon.containers["engine-abc"] == "paused"
            assert (asleep.mode, asleep.gpu_memory_released) == ("paused", False)
            assert asleep.message.startswith("compute paused, GPU memory kept")
            assert not (await driver.sleep(target)).changed  # 409 "already paused"
            assert (await driver.wake(target)).changed
            assert daemon.containers["engine-abc"] == "running"
            assert not (await driver.wake(target)).changed  # 409 "not paused"
            with pytest.raises(UnknownTask, match="No such container"):
                await driver.sleep(SleepTarget("t", None, container="engine-gone"))
            with pytest.raises(EngineRefused, match="not running"):
                await driver.sleep(SleepTarget("t", None, container="engine-old"))
            with pytest.raises(EngineRefused, match="not a container"):
                await driver.sleep(SleepTarget("t", None, container="../images/json"))
            with pytest.raises(SleepUnsupported, match="names no container"):
                await driver.sleep(SleepTarget("t", "127.0.0.1:1"))
            assert daemon.calls == ["pause engine-abc", "pause engine-abc",
                                    "unpause engine-abc", "unpause engine-abc",
                                    "pause engine-gone", "pause engine-old"]
        finally:
            await docker.aclose()
            await daemon.stop()

    async def test_no_daemon(self, short_dir: Path) -> None:
        docker = DockerClient(short_dir / "absent.sock")
        try:
            assert not docker.present() and not await docker.ping()
            with pytest.raises(EngineUnreachable, match="cannot be reached"):
                await docker.pause("engine-abc")
        finally:
            await docker.aclose()

    async def test_engines_from_images(self, short_dir: Path) -> None:
        daemon = DockerStandIn(short_dir / "docker.sock", {}, images=[
            "vllm/vllm-openai:v0.11.0", "lmsysorg/sglang:latest",
            "ghcr.io/ggml-org/llama.cpp:server-cuda", "mthreads/vllm-musa:0.4",
            "registry.local:5000/postgres"])
        await daemon.start()
        docker = DockerClient(short_dir / "docker.sock")
        try:
            found = await usable_engines("", docker)  # nothing on an empty search path
            local = await usable_engines("")
            assert set(found) - set(local) >= {"vllm", "sglang", "vllm-mtt"} - set(local)
            assert {"vllm", "sglang", "llamacpp", "vllm-mtt"} <= set(found)
        finally:
            await docker.aclose()
            await daemon.stop()
        assert engines_in_images(["registry.local:5000/tools/mindie:1"], ENGINE_PROBES) == {
            "mindie"}
        assert engines_in_images(["busybox", "registry.local:5000/busybox"],
                                 ENGINE_PROBES) == set()


class TestChoosingADriver:
    async def test_registry(self, client: httpx.AsyncClient, short_dir: Path) -> None:
        async with Executor(base_env={}) as executor:
            docker = DockerClient(short_dir / "docker.sock")
            with_docker = Sleepers(client, executor, docker, 5)
            without = Sleepers(client, executor, None, 5)
            assert isinstance(with_docker.driver("vllm", SleepTarget("t", "h:1")), VllmSleep)
            assert isinstance(with_docker.driver(None, SleepTarget("t", "h:1", local=True)),
                              ExecutorPause)
            assert isinstance(with_docker.driver(None, SleepTarget("t", None, "c1")),
                              DockerPause)
            with pytest.raises(SleepUnsupported, match="no sleep API 'tgi'"):
                with_docker.driver("tgi", SleepTarget("t", "h:1"))
            with pytest.raises(SleepUnsupported, match="DOCKER_HOST"):
                without.driver(None, SleepTarget("t", None, "c1"))
            with pytest.raises(SleepUnsupported, match="no sleep API and names no container"):
                without.driver(None, SleepTarget("t", "h:1"))
            await docker.aclose()


class TestLocalPause:
    async def test_pause_is_reported_once_and_truthfully(
            self, node_tasks: NodeTasks, bridge_standin: BridgeStandIn,
            tmp_path: Path) -> None:
        spec = double_task(tmp_path, "task-p", free_port())
        await node_tasks.start(spec, TaskMeta(engine="transformers"))
        await node_tasks.executor.wait_for("task-p", TaskState.RUNNING)
        answer = await node_tasks.sleep("task-p", why="asked")
        pid = node_tasks.executor.status("task-p").pid
        assert await settles_in(pid, "T")  # stopped: SIGSTOP reached the engine
        assert (answer.state, answer.mode, answer.gpu_memory_released) == (
            "sleeping", "paused", False)
        assert "compute paused, GPU memory kept" in answer.message
        again = await node_tasks.sleep("task-p")
        assert again.message.startswith("was already asleep")
        status = node_tasks.statuses_json({})[0]
        assert (status["state"], status["executor_state"]) == ("sleeping", "paused")
        assert status["sleep"]["mode"] == "paused"
        woke = await node_tasks.wake("task-p")
        assert woke.state == "running" and await settles_in(pid, "SR")
        assert (await node_tasks.wake("task-p")).message.startswith("was not asleep")
        await node_tasks.sleep("task-p", why="idle", report=True)  # as auto-sleep does
        await bridge_standin.until(lambda: len(bridge_standin.states_of("task-p")) >= 3)
        # asked-for sleeps are answered, not reported; the executor's pause never is
        assert bridge_standin.states_of("task-p") == ["starting", "running", "sleeping"]
        sleeping = bridge_standin.states[-1][1]
        assert sleeping["sleep_mode"] == "paused" and sleeping["gpu_memory_released"] is False
        assert sleeping["address"] == f"127.0.0.1:{spec.port}"
        assert sleeping["reason"].startswith("idle: compute paused, GPU memory kept")

    async def test_only_a_running_task_sleeps(self, node_tasks: NodeTasks,
                                              tmp_path: Path) -> None:
        spec = TaskSpec(task_id="task-slow", argv=(sys.executable, "-c",
                                                   "import time; time.sleep(60)"),
                        port=free_port(), log_path=tmp_path / "slow.log")
        await node_tasks.start(spec, TaskMeta())
        with pytest.raises(Exception, match="only a running task can sleep") as refused:
            await node_tasks.sleep("task-slow")
        assert refused.value.status == 409  # type: ignore[attr-defined]
        with pytest.raises(UnknownTask):
            await node_tasks.sleep("task-nobody")

    @pytest.mark.slow
    @pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                        reason="the engine is missing: pip install 'llama-cpp-python[server]'")
    async def test_real_llama_cpp_server_paused_and_resumed(
            self, node_tasks: NodeTasks, client: httpx.AsyncClient, tmp_path: Path) -> None:
        port = free_port()
        spec = TaskSpec(task_id="task-llama", argv=(
            sys.executable, "-m", "llama_cpp.server", "--model", str(smollm_gguf()),
            "--host", "127.0.0.1", "--port", str(port), "--model_alias", "smol",
            "--n_ctx", "512"), port=port, log_path=tmp_path / "llama.log",
            ready_paths=("/v1/models",))
        await node_tasks.start(spec, TaskMeta(engine="llamacpp"))
        await node_tasks.executor.wait_for("task-llama", TaskState.RUNNING)
        answer = await node_tasks.sleep("task-llama")
        assert answer.mode == "paused" and not answer.gpu_memory_released
        await settles_in(node_tasks.executor.status("task-llama").pid, "T")
        with pytest.raises(httpx.ReadTimeout):  # frozen: it cannot answer
            await client.get(f"http://127.0.0.1:{port}/v1/models", timeout=1.0)
        await node_tasks.wake("task-llama")
        # plain completions: this machine's llama-cpp-python build crashes (SIGSEGV) in its
        # chat-template path whether or not the server was ever paused
        reply = await client.post(f"http://127.0.0.1:{port}/v1/completions", timeout=60,
                                  json={"model": "smol", "max_tokens": 4, "prompt": "Hello"})
        assert reply.status_code == 200 and reply.json()["choices"][0]["text"]
