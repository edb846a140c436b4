"""The GPU share layout set through a real agent's API by the bridge's own AgentClient, and
picked up by a real heteroflow-gpu whose ``share_layout`` names the agent's file
(docs/gpu-sharing.md, "Who changes the layout")."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent_plugin.serve import Agent
from agent_plugin.settings import AgentSettings
from bridge.agents.client import AgentClient
from bridge.errors import AgentRefused
from tests.support.agent_helpers import ToolBox
from tests.support.agent_standins import BridgeStandIn
from tests.support.nomad_plugin_client import PluginClient

pytestmark = pytest.mark.timeout(180)
FIRST = "GPU-1a2b3c4d-aaaa-bbbb-cccc-1234567890ab"


@pytest.fixture
async def agent(agent_settings: Callable[..., AgentSettings],
                bridge_standin: BridgeStandIn) -> AsyncIterator[Agent]:
    settings = agent_settings(bridge_url=bridge_standin.url, node_token=bridge_standin.token,
                              heartbeat_seconds=0.3, report_retry_seconds=0.05)
    running = Agent(settings, base_env=dict(os.environ))
    await running.start()
    yield running
    await running.stop()


async def test_the_bridge_sets_the_layout_and_the_plugin_follows(
        agent: Agent, tmp_path: Path) -> None:
    assert agent.url and agent.identity
    layout_file = agent.settings.gpu_layout_path
    ToolBox(tmp_path).add("nvidia-smi", replay="nvidia_smi_a100x2.csv")
    client = AgentClient(timeout=10)
    try:
        assert await client.gpu_layout(agent.url, agent.identity.secret) == {}
        with PluginClient() as plugin:
            plugin.set_config({"tool_path": str(tmp_path), "vendors": ["nvidia"],
                               "nvml": False, "fingerprint_period": "100ms",
                               "share_layout": str(layout_file)})
            stream = plugin.fingerprint()
            assert {g.device_type for g in next(stream).device_group} == {"gpu"}
            answer = await client.set_gpu_layout(agent.url, agent.identity.secret, {FIRST: 3})
            assert answer == {FIRST: 3}
            shared = {g.device_type: g for g in next(stream).device_group}
            assert [d.ID for d in shared["gpu-share"].devices] == [
                f"{FIRST}@share{i}" for i in range(3)]
        with pytest.raises(AgentRefused, match="from 1 to 8"):
            await client.set_gpu_layout(agent.url, agent.identity.secret, {FIRST: 9})
        assert await client.gpu_layout(agent.url, agent.identity.secret) == {FIRST: 3}
    finally:
        await client.close()
