"""QoS tiers and co-scheduling on the Nomad double, as a table (docs/gpu-sharing.md).

Nodes take their devices from the real heteroflow-gpu plugin (recorded amd-smi output of two
MI300X): one node offers both whole, the other offers the first shared in four (budget =
192496 MiB measured free / 4 = 48124 MiB) and the second whole. Each service is the bridge's
own rendering of a task group (template, ``/v1/jobs/parse``), registered in order; the
result is where each one went, or why it waits in the bridge's words. The invariant checker
runs after every row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bridge.domain.models import GpuVendor, QoS
from bridge.domain.topology import Parallelism
from bridge.nomad.explain import explain_failed
from heteroflow_contracts.load import LoadLimits
from tests.support.agent_helpers import ToolBox
from tests.support.gpu_invariants import from_double
from tests.support.jobspec_render import rendered
from tests.support.nomad_double import ManualRunner, NomadDouble, mixed_fleet
from tests.support.nomad_double.device_plugins import fingerprint_devices, with_plugin_devices
from tests.support.nomad_double.fleet import Gpu, NodeSpec, build_node
from tests.support.nomad_plugin_client import PluginClient
from tests.support.vendor_tools import add_all_vendor_tools

from .helpers import allocs, blocked_eval

pytestmark = pytest.mark.timeout(180)

FIRST, SECOND = "0xA7BC2D1E4F5A6B7C", "0xB8CD3E2F5A6B7C8D"
BUDGET = 192496 // 4
Json = dict[str, Any]


@dataclass(frozen=True)
class Service:
    name: str
    qos: QoS = QoS.BRONZE
    vram: int | None = 20_000
    co: Json = field(default_factory=lambda: {"max_models_per_gpu": 4})
    gpus: int = 1  # 2: tensor parallel, which takes whole GPUs whatever the tier


def amd_groups(tmp: Any, shares: dict[str, int]) -> list[Json]:
    tools = tmp.mktemp("tools")
    add_all_vendor_tools(ToolBox(tools))
    with PluginClient() as plugin:
        plugin.set_config({"tool_path": str(tools), "vendors": ["amd"], "shares": shares})
        return fingerprint_devices(plugin)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Json]]:
    whole = next(n for n in mixed_fleet() if n["Name"] == "gpu-mi300x-01")
    shared = build_node(NodeSpec("gpu-mi300x-02", "127.0.0.24", 192, 2400, 2_063_360,
                                 Gpu("amd", "AMD Instinct MI300X", 2, 196_608, False),
                                 engines="vllm"))
    yield [with_plugin_devices(whole, amd_groups(tmp_path_factory, {})),
           with_plugin_devices(shared, amd_groups(tmp_path_factory, {FIRST: 4}))]


@pytest.fixture
async def nomad(fleet: list[Json]) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    # preemption for service jobs on, as nomad.hcl's default_scheduler_config sets it
    async with NomadDouble(nodes=fleet, runner=ManualRunner(), preemption=True) as double, \
            httpx.AsyncClient(base_url=double.address, timeout=30) as http:
        names = {n["ID"]: n["Name"] for n in (await http.get("/v1/nodes")).json()}
        yield http, names


async def place(http: httpx.AsyncClient, service: Service,
                load: LoadLimits | None = None) -> None:
    hcl = await rendered(name=service.name, load=load, qos=service.qos, gpu_type=GpuVendor.AMD,
                         estimated_gpu_memory_mb=service.vram, co_schedule=service.co,
                         model_path=f"/models/{service.name}", gpu_required=service.gpus,
                         **({"parallelism": Parallelism.TENSOR_PARALLEL, "world_size": 2}
                            if service.gpus > 1 else {}))
    job = (await http.post("/v1/jobs/parse", json={"JobHCL": hcl})).json()
    response = await http.put("/v1/jobs", json={"Job": job})
    assert response.status_code == 200, response.text


async def outcome(http: httpx.AsyncClient, names: dict[str, str], service: str) -> str:
    """"<node> <device IDs>" where it went, else "waits: <why pending>"."""
    found = await allocs(http, f"hf-{service}")
    if not found:
        metric = (await blocked_eval(http, f"hf-{service}"))["FailedTGAllocs"]
        return "waits: " + explain_failed(next(iter(metric.values())))
    (alloc,) = [(await http.get(f"/v1/allocation/{a['ID']}")).json() for a in found]
    ids = [i for t in alloc["AllocatedResources"]["Tasks"].values()
           for d in t["Devices"] or [] for i in d["DeviceIDs"]]
    return f"{names[alloc['NodeID']]} {' '.join(ids)}"


async def invariants(http: httpx.AsyncClient) -> list[str]:
    stubs = (await http.get("/v1/allocations")).json()
    full = [(await http.get(f"/v1/allocation/{a['ID']}")).json() for a in stubs]
    nodes = [(await http.get(f"/v1/node/{n['ID']}")).json()
             for n in (await http.get("/v1/nodes")).json()]
    return from_double(full, nodes)


GOLD = QoS.GOLD
FULL = "waits: Nomad cannot place its replica (2 nodes evaluated): 2 nodes have all matching"
SH = f"gpu-mi300x-02 {FIRST}@share"
NO_SHARE = "waits: Nomad cannot place its replica (2 nodes evaluated): 2 nodes have no GPU"
TABLE: list[tuple[str, list[Service], list[str]]] = [
    ("gold services take distinct whole GPUs; the fourth waits",
     [Service(f"gold-{i}", GOLD) for i in range(4)],
     [f"gpu-mi300x-01 {FIRST}", f"gpu-mi300x-01 {SECOND}", f"gpu-mi300x-02 {SECOND}",
      FULL]),
    ("four bronze models share one GPU; the fifth waits",
     [Service(f"bronze-{i}") for i in range(5)],
     [SH + "0", SH + "1", SH + "2", SH + "3",
      "waits: Nomad cannot place its replica (2 nodes evaluated): 1 node have no GPU "
      "matching the request (vendor, model or memory); 1 node have all matching GPUs in use"]),
    ("overcommit 1.0 refuses a 60000 MiB model in a 48124 MiB share",
     [Service("big", vram=60_000)], [NO_SHARE]),
    ("overcommit 1.5 admits it (needs 40000 MiB)",
     [Service("big", vram=60_000, co={"max_models_per_gpu": 4,
                                      "vram_overcommit_ratio": 1.5})], [SH + "0"]),
    ("silver waits on AMD: its shares have no driver-level isolation",
     [Service("silver", QoS.SILVER)], [NO_SHARE]),
]


@pytest.mark.parametrize(("case", "services", "expected"), TABLE, ids=[t[0] for t in TABLE])
async def test_sharing_decisions(nomad: tuple[httpx.AsyncClient, dict[str, str]], case: str,
                                 services: list[Service], expected: list[str]) -> None:
    http, names = nomad
    for service in services:
        await place(http, service)
    got = [await outcome(http, names, s.name) for s in services]
    for want, seen in zip(expected, got, strict=True):
        assert want in seen, (case, got)
    if services[0].qos is GOLD:  # whole GPUs: every device ID given once per node
        given = [g for g in got if not g.startswith("waits")]
        assert len(set(given)) == len(given), got
    assert await invariants(http) == []


async def test_a_hot_node_takes_nothing_new(
        nomad: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    """The agent's figures as node metadata; the bridge's thresholds as constraints. What
    already runs on a node that turns hot stays: constraints are checked when placing."""
    http, names = nomad
    ids = {n: i for i, n in names.items()}

    async def cpu(node: str, percent: str) -> None:
        response = await http.post("/v1/client/metadata", json={
            "NodeID": ids[node], "Meta": {"heteroflow.load.cpu": percent}})
        assert response.status_code == 200, response.text

    await cpu("gpu-mi300x-01", "97")
    await place(http, Service("first", GOLD), LoadLimits())
    await place(http, Service("second", GOLD), LoadLimits())
    assert await outcome(http, names, "first") == f"gpu-mi300x-02 {SECOND}"
    assert await outcome(http, names, "second") == (
        "waits: Nomad cannot place its replica (2 nodes evaluated): 1 node fail the CPU load "
        "threshold (%) rule `${meta.heteroflow.load.cpu} <= 90`; 1 node have all matching "
        "GPUs in use")
    await cpu("gpu-mi300x-02", "99")
    await cpu("gpu-mi300x-01", "20")
    await place(http, Service("third", GOLD), LoadLimits())
    assert (await outcome(http, names, "third")).startswith("gpu-mi300x-01"), \
        [await outcome(http, names, n) for n in ("first", "second", "third")]
    assert await outcome(http, names, "first") == f"gpu-mi300x-02 {SECOND}"  # it stays
    assert await invariants(http) == []


async def test_gold_preempts_bronze_which_goes_pending_with_a_reason(
        nomad: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    """Bronze holding whole GPUs (a tensor-parallel pair) is evicted for a gold service when
    no whole GPU is free: its allocation says by whom, and its replacement waits."""
    http, names = nomad
    await place(http, Service("tp", gpus=2))
    assert (await outcome(http, names, "tp")).startswith(f"gpu-mi300x-01 {FIRST} {SECOND}")
    await place(http, Service("gold-a", GOLD))
    assert await outcome(http, names, "gold-a") == f"gpu-mi300x-02 {SECOND}"
    await place(http, Service("gold-b", GOLD))
    (gold_b,) = await allocs(http, "hf-gold-b")
    full = (await http.get(f"/v1/allocation/{gold_b['ID']}")).json()
    (victim,) = full["PreemptedAllocations"]
    evicted = (await http.get(f"/v1/allocation/{victim}")).json()
    assert (evicted["JobID"], evicted["DesiredStatus"], evicted["PreemptedByAllocation"]) == (
        "hf-tp", "evict", gold_b["ID"])
    assert evicted["DesiredDescription"] == f"Preempted by alloc ID {gold_b['ID']}"
    assert [a["ID"] for a in await allocs(http, "hf-tp")] == [victim]  # no replacement fits
    why = explain_failed(next(iter((await blocked_eval(http, "hf-tp"))["FailedTGAllocs"]
                                   .values())))
    assert why == ("Nomad cannot place its replica (2 nodes evaluated): 1 node have no GPU "
                   "matching the request (vendor, model or memory); 1 node have all matching "
                   "GPUs in use")
    assert await invariants(http) == []


async def test_equal_or_near_priorities_do_not_preempt(
        nomad: tuple[httpx.AsyncClient, dict[str, str]]) -> None:
    http, names = nomad
    for name in ("g1", "g2", "g3"):
        await place(http, Service(name, GOLD))
    await place(http, Service("g4", GOLD))
    assert (await outcome(http, names, "g4")).startswith("waits:")
    assert await invariants(http) == []


@pytest.mark.parametrize("switch_on", ["gpu-tp-a", "gpu-tp-b"])
async def test_tensor_parallel_prefers_gpus_below_one_switch(fleet: list[Json],
                                                             switch_on: str) -> None:
    """The plugin's group attribute p2p (from the PCI tree) and the jobspec's device
    affinity: of two equal nodes, the one whose GPUs share a PCIe switch is chosen."""
    nodes = []
    for i, name in enumerate(("gpu-tp-a", "gpu-tp-b")):
        node = with_plugin_devices(build_node(NodeSpec(
            name, f"127.0.0.{40 + i}", 192, 2400, 2_063_360,
            Gpu("amd", "AMD Instinct MI300X", 2, 196_608, False), engines="vllm")),
            fleet[0]["NodeResources"]["Devices"])
        for group in node["NodeResources"]["Devices"]:
            group["Attributes"]["p2p"] = {"Float": None, "Int": None, "Bool": None, "Unit": "",
                                          "String": "pcie-switch" if name == switch_on
                                          else "host-bridge"}
        nodes.append(node)
    async with NomadDouble(nodes=nodes, runner=ManualRunner()) as double, \
            httpx.AsyncClient(base_url=double.address, timeout=30) as http:
        names = {n["ID"]: n["Name"] for n in (await http.get("/v1/nodes")).json()}
        await place(http, Service("tp", GOLD, gpus=2))
        assert (await outcome(http, names, "tp")).startswith(switch_on)
        assert await invariants(http) == []
