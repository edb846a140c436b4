"""Fixtures for the agent tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_plugin.report.bridge import BridgeClient
from agent_plugin.report.task_states import TaskStateReporter
from agent_plugin.settings import AgentSettings
from agent_plugin.tasks import NodeTasks
from tests.support.agent_helpers import GPU_FIXTURES, ToolBox
from tests.support.agent_standins import BridgeStandIn


@pytest.fixture
def toolbox(tmp_path: Path) -> ToolBox:
    folder = tmp_path / "bin"
    folder.mkdir()
    return ToolBox(folder)


@pytest.fixture
async def bridge_standin() -> AsyncIterator[BridgeStandIn]:
    server = BridgeStandIn()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: unix socket paths must stay under 108 bytes, and pytest's
    tmp_path (with the test's name in it) can be longer."""
    folder = Path(tempfile.mkdtemp(prefix="hf-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def agent_settings(tmp_path: Path) -> Callable[..., AgentSettings]:
    """Settings for an agent that touches nothing of this machine: its own home, no vendor
    tools (the dev inventory's devices), a private model root, no Nomad, no Docker."""
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)

    def make(**overrides: Any) -> AgentSettings:
        values: dict[str, Any] = {
            "home": tmp_path / "home", "model_roots": (models,), "gpu_vendors": (),
            "gpu_inventory": GPU_FIXTURES / "inventory_dev.json", "tool_path": str(tmp_path),
            "agent_listen": "127.0.0.1:0", "nomad_addr": None, "nomad_token": None,
            "docker_host": f"unix://{tmp_path}/no-docker.sock", "bridge_url": None,
            "node_token": None, "idle_poll_seconds": 3600.0, "stop_grace_seconds": 5.0}
        values.update(overrides)
        return AgentSettings(**values)

    return make


@pytest.fixture
async def node_tasks(bridge_standin: BridgeStandIn) -> AsyncIterator[NodeTasks]:
    """NodeTasks whose state reports reach the bridge stand-in."""
    bridge = BridgeClient(bridge_standin.url, bridge_standin.token)
    reporter = TaskStateReporter(bridge, retry_first_s=0.05)
    sender = asyncio.create_task(reporter.run())
    async with httpx.AsyncClient(trust_env=False) as client:
        tasks = NodeTasks(reporter=reporter, client=client, docker=None,
                          advertise_host="127.0.0.1", engine_timeout_s=10, stop_grace_s=5,
                          base_env=dict(os.environ))
        try:
            yield tasks
        finally:
            await tasks.shutdown()
            await reporter.flush(5)
            sender.cancel()
            await bridge.aclose()

