"""Nodes whose devices come from the real heteroflow-gpu plugin (launched as Nomad's loader
does, against recorded vendor outputs): Nomad's accounting then covers every vendor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from heteroflow_contracts.vendors import VENDORS
from tests.support.agent_helpers import GPU_FIXTURES, ToolBox
from tests.support.nomad_double import ManualRunner, NomadDouble, mixed_fleet
from tests.support.nomad_double.device_plugins import (
    device_groups,
    fingerprint_devices,
    validate,
    with_plugin_devices,
)
from tests.support.nomad_double.fleet import Gpu, NodeSpec, build_node
from tests.support.nomad_plugin_client import PluginClient
from tests.support.vendor_tools import add_all_vendor_tools

from .helpers import allocs, blocked_eval, gpu_job, register

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def plugin_groups(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    tools = tmp_path_factory.mktemp("tools")
    add_all_vendor_tools(ToolBox(tools))
    with PluginClient() as plugin:
        plugin.set_config({"tool_path": str(tools), "nvml": False})
        yield fingerprint_devices(plugin)


NPU_NODE = NodeSpec("npu-910b-01", "127.0.0.21", 192, 2600, 1_031_168,
                    Gpu("ascend", "Ascend 910B1", 3, 65536, False), engines="vllm")


def node(name: str) -> dict[str, Any]:
    return next(n for n in mixed_fleet() if n["Name"] == name)


@pytest.fixture
async def client(plugin_groups: list[dict[str, Any]]) -> AsyncIterator[httpx.AsyncClient]:
    amd = [g for g in plugin_groups if g["Vendor"] == "amd"]
    ascend = [g for g in plugin_groups if g["Vendor"] == "ascend"]
    nodes = [with_plugin_devices(node("gpu-mi300x-01"), amd),
             with_plugin_devices(build_node(NPU_NODE), ascend)]
    async with NomadDouble(nodes=nodes, runner=ManualRunner(), heartbeat_seconds=0.2) as double, \
            httpx.AsyncClient(base_url=double.address, timeout=30) as http:
        yield http


async def device_ids(client: httpx.AsyncClient, job_id: str) -> list[str]:
    taken = []
    for stub in await allocs(client, job_id):
        alloc = (await client.get(f"/v1/allocation/{stub['ID']}")).json()
        for device in alloc["AllocatedResources"]["Tasks"]["engine"]["Devices"]:
            taken += device["DeviceIDs"]
    return taken


def test_every_vendors_groups_pass_nomads_validation(
        plugin_groups: list[dict[str, Any]]) -> None:
    # fingerprint_devices raised already if not; this says which vendors were checked
    assert {g["Vendor"] for g in plugin_groups} == set(VENDORS)


def test_groups_have_nomads_node_device_shape(plugin_groups: list[dict[str, Any]]) -> None:
    (amd,) = [g for g in plugin_groups if g["Vendor"] == "amd"]
    assert (amd["Type"], amd["Name"]) == ("gpu", "AMD Instinct MI300X")
    assert amd["Instances"][0] == {"ID": "0xA7BC2D1E4F5A6B7C", "Healthy": True,
                                   "HealthDescription": "",
                                   "Locality": {"PciBusID": "0000:0c:00.0"}}
    assert amd["Attributes"]["memory"] == {"Float": None, "Int": 196592, "String": None,
                                           "Bool": None, "Unit": "MiB"}


async def test_two_amd_services_never_share_a_gpu(client: httpx.AsyncClient) -> None:
    await register(client, gpu_job("amd-a", device="amd/gpu"))
    await register(client, gpu_job("amd-b", device="amd/gpu"))
    first, second = await device_ids(client, "amd-a"), await device_ids(client, "amd-b")
    assert len(first) == len(second) == 1
    assert set(first + second) == {"0xA7BC2D1E4F5A6B7C", "0xB8CD3E2F5A6B7C8D"}
    await register(client, gpu_job("amd-c", device="amd/gpu"))
    assert await allocs(client, "amd-c") == []  # both MI300X are taken
    metric = (await blocked_eval(client, "amd-c"))["FailedTGAllocs"]["server"]
    assert metric["NodesExhausted"] == 1


async def test_an_unhealthy_gpu_is_not_given(client: httpx.AsyncClient) -> None:
    await register(client, gpu_job("npu", device="ascend/gpu", gpus=2))
    assert sorted(await device_ids(client, "npu")) == ["0000:01:00.0/0", "0000:C1:00.0/0"]
    await register(client, gpu_job("npu-more", device="ascend/gpu"))
    assert await allocs(client, "npu-more") == []  # the third chip reports Warning


async def test_memory_constraint_on_the_plugins_attribute(client: httpx.AsyncClient) -> None:
    big = {"LTarget": "${device.attr.memory}", "Operand": ">=", "RTarget": "100 GiB"}
    await register(client, gpu_job("big", device_constraints=[big], device="amd/gpu"))
    assert len(await device_ids(client, "big")) == 1  # 192 GiB MI300X
    await register(client, gpu_job("big-npu", device_constraints=[big], device="ascend/gpu"))
    assert await allocs(client, "big-npu") == []  # 64 GiB chips


def test_the_plugin_replaces_only_its_vendors(plugin_groups: list[dict[str, Any]]) -> None:
    a100 = node("gpu-a100-01")
    updated = with_plugin_devices(a100, [g for g in plugin_groups if g["Vendor"] == "amd"])
    vendors = [d["Vendor"] for d in updated["NodeResources"]["Devices"]]
    assert vendors == ["nvidia", "amd"]
    assert a100["NodeResources"]["Devices"][0]["Vendor"] == "nvidia"  # the input is intact


def test_nomads_validation_catches_what_it_would_refuse() -> None:
    bad = [{"Vendor": "amd", "Type": "gpu", "Name": "", "Instances": [{"ID": ""}],
            "Attributes": {"memory": {"Float": None, "Int": 1, "String": None, "Bool": None,
                                      "Unit": "MiBs"},
                           "driver": {"Float": None, "Int": None, "String": "6", "Bool": None,
                                      "Unit": "MiB"}}}]
    assert validate(bad) == [
        "device group 0: device name must be specified",
        "device group 0: device 0: device ID must be specified",
        "device attribute 'memory' invalid: unrecognized unit 'MiBs'",
        "device attribute 'driver' invalid: unit can not be specified on a boolean or "
        "string attribute"]


async def test_a_chip_turning_healthy_needs_a_new_evaluation(tmp_path: Path) -> None:
    """The whole loop: the plugin's next fingerprint updates the node as the Nomad client
    does. Nomad caches the device check per computed node class, and instance health is
    not part of the class (structs/node_class.go), so the blocked evaluation is not retried
    by the update; a new evaluation of the job places onto the recovered chip."""
    recorded = (GPU_FIXTURES / "npu_smi_910b.txt").read_text()  # NPU 4 reports Warning
    current = tmp_path / "info.txt"
    current.write_text(recorded)
    ToolBox(tmp_path).add("npu-smi", body=(
        f'case "$*" in\n  info) cat {current} ;;\n'
        f'  "info -m") cat {GPU_FIXTURES}/npu_smi_910b_m.txt ;;\nesac'))
    with PluginClient() as plugin:
        plugin.set_config({"tool_path": str(tmp_path), "vendors": ["ascend"],
                           "fingerprint_period": "100ms"})
        stream = plugin.fingerprint()
        npu = with_plugin_devices(build_node(NPU_NODE), device_groups(next(stream)))
        async with NomadDouble(nodes=[npu], runner=ManualRunner(),
                               heartbeat_seconds=0.2) as double, \
                httpx.AsyncClient(base_url=double.address, timeout=30) as http:
            await register(http, gpu_job("all-three", device="ascend/gpu", gpus=3))
            assert await allocs(http, "all-three") == []
            metric = (await blocked_eval(http, "all-three"))["FailedTGAllocs"]["server"]
            assert metric["ConstraintFiltered"] == {"missing devices": 1}

            fixed = tmp_path / "info.new"
            fixed.write_text(recorded.replace("Warning", "OK     "))
            fixed.replace(current)
            groups = device_groups(await asyncio.to_thread(next, stream))
            assert all(i["Healthy"] for g in groups for i in g["Instances"])
            before = double.store.nodes[npu["ID"]]["ComputedClass"]
            updated = double.cluster.set_node_devices(npu["ID"], groups)
            assert updated["ComputedClass"] == before
            assert await allocs(http, "all-three") == []  # still blocked, as in Nomad

            answer = await http.post("/v1/job/all-three/evaluate", json={"JobID": "all-three"})
            assert answer.status_code == 200, answer.text
            assert sorted(await device_ids(http, "all-three")) == \
                ["0000:01:00.0/0", "0000:81:00.0/0", "0000:C1:00.0/0"]
