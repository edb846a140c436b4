"""Nomad dynamic node metadata: the keys built from GPUs, engines and models, and publishing
them to the Nomad API double (tests/support/nomad_double) only when they change."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from agent_plugin.detectors.static import read_inventory
from agent_plugin.errors import ReportError
from agent_plugin.identity import load_identity
from agent_plugin.models import GpuDevice
from agent_plugin.report.bridge import BridgeClient
from agent_plugin.report.loop import ReportLoop
from agent_plugin.report.nomad_meta import NomadMetaPublisher, node_meta
from agent_plugin.report.survey import Surveyor
from agent_plugin.settings import AgentSettings
from tests.support.agent_helpers import GPU_FIXTURES
from tests.support.agent_standins import BridgeStandIn
from tests.support.model_factory import write_gguf
from tests.support.nomad_double import NomadDouble, mixed_fleet
from tests.support.nomad_double.fleet import node_id

CPU_NODE = node_id("cpu-01")
KEYS = {"heteroflow.agent", "heteroflow.gpu.vendor", "heteroflow.gpu.count",
        "heteroflow.gpu.model", "heteroflow.gpu.memory_mb", "heteroflow.gpu.cc",
        "heteroflow.engines", "heteroflow.models"}


def gpu(vendor: str, name: str, memory: int, cc: str | None = None,
        healthy: bool = True) -> GpuDevice:
    return GpuDevice(vendor=vendor, index=0, uuid=f"{vendor}-{name}-{memory}", name=name,
                     memory_total_mb=memory, memory_used_mb=0, memory_free_mb=memory,
                     healthy=healthy, compute_capability=cc)


class TestNodeMeta:
    def test_the_dev_inventory(self) -> None:
        devices = read_inventory(GPU_FIXTURES / "inventory_dev.json")
        meta = node_meta(devices, ["vllm", "llamacpp"], ["qwen", "smol", "qwen"])
        assert set(meta) == KEYS
        assert meta == {
            "heteroflow.agent": "1", "heteroflow.gpu.vendor": "nvidia",
            "heteroflow.gpu.count": "2",  # the unhealthy Acme N1 is not offered
            "heteroflow.gpu.model": "NVIDIA GeForce RTX 4090",
            "heteroflow.gpu.memory_mb": "24564", "heteroflow.gpu.cc": "8.9",
            "heteroflow.engines": "llamacpp,vllm", "heteroflow.models": "qwen,smol"}

    def test_no_gpu_unsets_the_gpu_keys(self) -> None:
        meta = node_meta([gpu("amd", "MI300X", 196_608, healthy=False)], [], ["a,b"])
        assert meta["heteroflow.gpu.count"] == "0" and meta["heteroflow.models"] == "a_b"
        assert all(meta[k] is None for k in ("heteroflow.gpu.vendor", "heteroflow.gpu.model",
                                             "heteroflow.gpu.memory_mb", "heteroflow.gpu.cc"))
        assert meta["heteroflow.engines"] == ""

    def test_mixed_node_describes_its_main_vendor_conservatively(self) -> None:
        devices = [gpu("nvidia", "A100", 81_920, "8.0"), gpu("nvidia", "V100", 16_384, "7.0"),
                   gpu("nvidia", "A100", 40_960, "10.0"), gpu("amd", "MI300X", 196_608)]
        meta = node_meta(devices, ["vllm"], [])
        assert (meta["heteroflow.gpu.vendor"], meta["heteroflow.gpu.count"]) == ("nvidia", "3")
        assert meta["heteroflow.gpu.model"] == "A100"
        assert meta["heteroflow.gpu.memory_mb"] == "16384"  # a task must fit any of them
        assert meta["heteroflow.gpu.cc"] == "7.0"  # by version, not by text ("10.0" < "7.0")
        amd = node_meta([replace(devices[3], index=i) for i in range(2)], [], [])
        assert amd["heteroflow.gpu.cc"] is None and amd["heteroflow.gpu.count"] == "2"


@pytest.fixture
async def nomad() -> AsyncIterator[NomadDouble]:
    async with NomadDouble(nodes=mixed_fleet(), acl_token="nomad-secret") as double:
        yield double


async def node(nomad: NomadDouble, nomad_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=nomad.address,
                                 headers={"X-Nomad-Token": "nomad-secret"}) as http:
        response = await http.get(f"/v1/node/{nomad_id}")
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found


class TestPublisher:
    async def test_publishes_only_changes(self, nomad: NomadDouble) -> None:
        publisher = NomadMetaPublisher(nomad.address, "nomad-secret", node_name="cpu-01")
        try:
            devices = read_inventory(GPU_FIXTURES / "inventory_dev.json")
            # with load figures, as the agent's loop always sends them
            meta = node_meta(devices, ["llamacpp"], ["smol"], {"cpu_load_percent": 40.0})
            assert await publisher.publish(meta)
            assert publisher.node_id == CPU_NODE  # found by its name: the double runs no client
            found = await node(nomad, CPU_NODE)
            assert {k: v for k, v in found["Meta"].items() if k.startswith("heteroflow.")} == meta
            index = found["ModifyIndex"]
            assert not await publisher.publish(dict(meta))
            assert (await node(nomad, CPU_NODE))["ModifyIndex"] == index

            assert await publisher.publish(node_meta([], ["llamacpp"], ["smol"]))
            gone = (await node(nomad, CPU_NODE))["Meta"]
            assert gone["heteroflow.gpu.count"] == "0" and "heteroflow.gpu.vendor" not in gone
        finally:
            await publisher.aclose()

    async def test_node_id_setting_and_refusals(self, nomad: NomadDouble) -> None:
        meta = node_meta([], [], [])
        configured = NomadMetaPublisher(nomad.address, "nomad-secret",
                                        node_id=node_id("gpu-a100-01"))
        stranger = NomadMetaPublisher(nomad.address, "nomad-secret", node_name="elsewhere")
        no_token = NomadMetaPublisher(nomad.address, None, node_name="cpu-01")
        try:
            assert await configured.publish(meta)
            assert (await node(nomad, node_id("gpu-a100-01")))["Meta"]["heteroflow.gpu.count"] \
                == "0"
            with pytest.raises(ReportError, match="HETEROFLOW_NOMAD_NODE_ID"):
                await stranger.publish(meta)
            with pytest.raises(ReportError, match="403") as refused:
                await no_token.publish(meta)
            assert refused.value.retryable and no_token.published is None
        finally:
            for publisher in (configured, stranger, no_token):
                await publisher.aclose()

    async def test_unreachable_nomad(self, nomad: NomadDouble) -> None:
        address = nomad.address
        await nomad.stop()
        publisher = NomadMetaPublisher(address, None, node_id=CPU_NODE)
        try:
            with pytest.raises(ReportError, match="cannot be reached"):
                await publisher.publish(node_meta([], [], []))
        finally:
            await publisher.aclose()
        await nomad.start()  # the fixture stops it again


class TestReportLoopWithNomad:
    async def test_survey_reaches_nomad_and_the_heartbeat_names_the_node(
            self, nomad: NomadDouble, bridge_standin: BridgeStandIn,
            agent_settings: Callable[..., AgentSettings]) -> None:
        settings = agent_settings(node_name="cpu-01")
        write_gguf(settings.model_roots[0] / "tiny.gguf")
        publisher = NomadMetaPublisher(nomad.address, "nomad-secret", node_name="cpu-01")
        bridge = BridgeClient(bridge_standin.url, bridge_standin.token)
        loop = ReportLoop(identity=load_identity(settings), surveyor=Surveyor(settings),
                          bridge=bridge, nomad=publisher, agent_url=lambda: None)
        try:
            assert await loop.report_once()
            meta = (await node(nomad, CPU_NODE))["Meta"]
            assert meta["heteroflow.models"] == "tiny" and meta["heteroflow.gpu.count"] == "2"
            assert meta["heteroflow.gpu.cc"] == "8.9"
            assert bridge_standin.heartbeats[-1]["nomad_node_id"] == CPU_NODE
            await nomad.stop()  # Nomad down: the heartbeat still goes
            write_gguf(settings.model_roots[0] / "second.gguf")
            assert await loop.report_once()
            await nomad.start()
            assert await loop.report_once()  # published now that Nomad is back
            assert (await node(nomad, CPU_NODE))["Meta"]["heteroflow.models"] == "second,tiny"
        finally:
            await publisher.aclose()
            await bridge.aclose()
