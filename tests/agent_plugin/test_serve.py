"""``python -m agent_plugin`` as a real process: it heartbeats, runs an engine for the
bridge, and on SIGTERM stops that engine and exits 0; a taken port makes it exit 1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx

from agent_plugin.executor.local import group_members
from tests.support.agent_helpers import GPU_FIXTURES
from tests.support.agent_standins import (
    ROOT,
    BridgeStandIn,
    double_env,
    engine_double_argv,
    free_port,
)


def agent_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HETEROFLOW_", "NOMAD_", "DOCKER_"))}
    (tmp_path / "models").mkdir(exist_ok=True)
    env.update({
        "HETEROFLOW_HOME": str(tmp_path / "home"),
        "HETEROFLOW_MODEL_ROOTS": str(tmp_path / "models"),
        "HETEROFLOW_GPU_VENDORS": "", "HETEROFLOW_TOOL_PATH": str(tmp_path),
        "HETEROFLOW_GPU_INVENTORY": str(GPU_FIXTURES / "inventory_dev.json"),
        "HETEROFLOW_AGENT_LISTEN": "127.0.0.1:0",
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
        "HETEROFLOW_LOG_FORMAT": "text"})
    env.update(extra)
    return env


async def agent_process(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agent_plugin", cwd=ROOT, env=env,
            stdout=out, stderr=asyncio.subprocess.STDOUT)


async def test_runs_until_sigterm_and_takes_its_engines_along(
        tmp_path: Path, bridge_standin: BridgeStandIn) -> None:
    env = agent_env(tmp_path, HETEROFLOW_BRIDGE_URL=bridge_standin.url,
                    HETEROFLOW_NODE_TOKEN=bridge_standin.token,
                    HETEROFLOW_HEARTBEAT_SECONDS="0.5", HETEROFLOW_REPORT_RETRY_SECONDS="0.1")
    agent = await agent_process(env, tmp_path / "agent.log")
    try:
        beat = await bridge_standin.until(lambda: bridge_standin.heartbeats[:1], within_s=60)
        url, secret = beat[0]["agent_url"], beat[0]["agent_secret"]
        assert len(beat[0]["gpus"]) == 3
        port = free_port()
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=30, headers={
                "Authorization": f"Bearer {secret}"}) as api:
            started = await api.post("/v1/tasks", json={
                "task_id": "task-cli", "argv": engine_double_argv(port), "env": double_env(),
                "port": port, "engine": "vllm", "sleep_api": "vllm"})
            assert started.status_code == 202
            await bridge_standin.until(
                lambda: "running" in bridge_standin.states_of("task-cli"), within_s=60)
            pid = (await api.get("/v1/status")).json()["tasks"][0]["pid"]
        agent.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await agent.wait() == 0
        assert group_members(pid) == []
        assert bridge_standin.states_of("task-cli")[-1] == "completed"
    finally:
        if agent.returncode is None:
            agent.kill()
            await agent.wait()
    logged = (tmp_path / "agent.log").read_text()
    assert "agent started" in logged and secret not in logged


async def test_a_taken_port_is_exit_status_1(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = agent_env(tmp_path, HETEROFLOW_AGENT_LISTEN=f"127.0.0.1:{taken.getsockname()[1]}")
        agent = await agent_process(env, tmp_path / "agent.log")
        async with asyncio.timeout(60):
            assert await agent.wait() == 1
    assert "agent did not start" in (tmp_path / "agent.log").read_text()
