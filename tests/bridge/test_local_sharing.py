"""The sharing rules of docs/gpu-sharing.md through local placement's pure decide(), on a
static GPU inventory (the recorded MI300X figures the Nomad double's table uses, and one
A100), with the invariant checker after every row. Services are decided in order, each
seeing what the earlier ones took, as local placement's loop does."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.domain.models import GpuVendor, Node, QoS, Task
from bridge.domain.status import TaskStatus
from bridge.placement.local.decide import Busy, Host, Start, Wait, busy_from, decide
from bridge.storage.local_placement import HeldTask
from tests.support.factories import make_task_group
from tests.support.gpu_invariants import Holding, SharedGpu, violations

NOW = datetime(2026, 1, 1, tzinfo=UTC)
MI300X = [{"index": 0, "vendor": "amd", "memory_free_mb": 192_496},
          {"index": 1, "vendor": "amd", "memory_free_mb": 196_309}]
A100 = [{"index": 0, "vendor": "nvidia", "memory_free_mb": 39_726}]
FOUR = {"max_models_per_gpu": 4}


def node(gpus: list[dict[str, Any]], facts: dict[str, Any] | None = None) -> Node:
    return Node(id="node-box", name="box", status="online", status_reason="",
                agent_url="http://10.0.0.5:7070", nomad_node_id=None, facts=facts or {},
                gpus=gpus,
                skipped_vendors={}, engines=["vllm"], models=[], last_heartbeat=NOW,
                created_at=NOW)


def host() -> Host:
    ports = iter(range(20000, 20100))
    return Host(python="/py", which=lambda _b: None, importable=lambda _m: True,
                free_port=lambda _node, _taken: next(ports))


def service(name: str, qos: QoS = QoS.BRONZE, vram: int = 20_000,
            co: dict[str, Any] | None = None, vendor: GpuVendor = GpuVendor.AMD) -> Any:
    gid = f"tg-{name}"
    task = Task(id=f"task-{name}-r0", group_id=gid, rank=0, status=TaskStatus.PENDING,
                status_reason="", image="img", gpu_required=1, gpu_type=None, gpu_id=None,
                node_id=None, model_path=f"/models/{name}", ports=[], volumes=[],
                estimated_gpu_memory_mb=None)
    return make_task_group(id=gid, name=name, qos=qos, estimated_gpu_memory_mb=vram,
                           co_schedule=co if co is not None else FOUR, gpu_type=vendor,
                           model_path=f"/models/{name}", tasks=[task])


def run(gpus: list[dict[str, Any]], groups: list[Any], busy: Busy | None = None,
        held: list[Holding] | None = None) -> tuple[list[str], list[str]]:
    """What each service got, in words, and the invariant checker's findings over every
    holding (``held``: what the rows held before)."""
    busy = busy if busy is not None else {}
    holdings = list(held or [])
    shared: dict[str, SharedGpu] = {}
    free = {str(g["index"]): int(g["memory_free_mb"]) for g in gpus}
    out = []
    for group in groups:
        (decision,) = decide(group, [node(gpus)], busy, host())
        if isinstance(decision, Wait):
            out.append("waits: " + decision.reason)
            continue
        assert isinstance(decision, Start)
        if decision.preempts:  # the evicted give their GPUs back
            holdings = [h for h in holdings if f"task-{h.holder}-r0" not in decision.preempts]
        share = decision.share
        gpu = f"box/{decision.gpu_ids[0]}"
        evicted = f" preempting {','.join(decision.preempts)}" if decision.preempts else ""
        if share is None:
            out.append(f"gpu {decision.gpu_ids[0]} whole{evicted}")
            holdings += [Holding(f"box/{g}", group.name, None, None) for g in decision.gpu_ids]
            continue
        out.append(f"gpu {share.gpu} share {share.number}/{share.shares}{evicted}")
        holdings.append(Holding(gpu, group.name, share.number, share.need_mib))
        shared.setdefault(gpu, SharedGpu(share.shares, share.budget_mib, free[share.gpu]))
    return out, violations(holdings, shared)


TABLE: list[tuple[str, list[dict[str, Any]], list[Any], list[str]]] = [
    ("gold takes distinct whole GPUs; the third waits", MI300X,
     [service(f"g{i}", QoS.GOLD) for i in range(3)],
     ["gpu 1 whole", "gpu 0 whole", "waits: box: needs 1 GPU(s); 0 of 2 GPUs are free"]),
    ("four bronze share one GPU; the fifth goes to the idle one", MI300X,
     [service(f"b{i}") for i in range(5)],
     ["gpu 0 share 0/4", "gpu 0 share 1/4", "gpu 0 share 2/4", "gpu 0 share 3/4",
      "gpu 1 share 0/4"]),
    ("on one GPU the fifth bronze waits", MI300X[:1],
     [service(f"b{i}") for i in range(5)],
     ["gpu 0 share 0/4", "gpu 0 share 1/4", "gpu 0 share 2/4", "gpu 0 share 3/4",
      "waits: box: no GPU share fits: GPU 0 has 4 of 4 models"]),
    ("overcommit 1.0 refuses 60000 MiB in a 48124 MiB share", MI300X[:1],
     [service("big", vram=60_000)],
     ["waits: box: no GPU share fits: GPU 0: needs 60000 MiB, a share has 48124 MiB"]),
    ("overcommit 1.5 admits it", MI300X[:1],
     [service("big", vram=60_000, co={**FOUR, "vram_overcommit_ratio": 1.5})],
     ["gpu 0 share 0/4"]),
    ("silver waits on AMD", MI300X[:1], [service("s", QoS.SILVER)],
     ["waits: box: silver needs a share with driver-level isolation (NVIDIA MPS); amd GPUs "
      "offer none"]),
    ("silver shares an NVIDIA GPU (MPS)", A100,
     [service("s", QoS.SILVER, vram=9_000, vendor=GpuVendor.NVIDIA)], ["gpu 0 share 0/4"]),
    ("gold preempts the bronze models of the only GPU", MI300X[:1],
     [service("b0"), service("b1"), service("g", QoS.GOLD)],
     ["gpu 0 share 0/4", "gpu 0 share 1/4", "gpu 0 whole preempting task-b0-r0,task-b1-r0"]),
    ("gold does not preempt gold", MI300X[:1], [service("g0", QoS.GOLD), service("g1", QoS.GOLD)],
     ["gpu 0 whole", "waits: box: needs 1 GPU(s); 0 of 1 GPUs are free"]),
    ("silver preempts bronze but not silver", A100,
     [service("b", vram=9_000, vendor=GpuVendor.NVIDIA, co={"max_models_per_gpu": 1}),
      service("s", QoS.SILVER, vram=9_000, vendor=GpuVendor.NVIDIA,
              co={"max_models_per_gpu": 1}),
      service("s2", QoS.SILVER, vram=9_000, vendor=GpuVendor.NVIDIA,
              co={"max_models_per_gpu": 1})],
     ["gpu 0 share 0/1", "gpu 0 share 0/1 preempting task-b-r0",
      "waits: box: no GPU share fits: GPU 0 has 1 of 1 models"]),
    ("bronze never takes a gold GPU", MI300X[:1], [service("g", QoS.GOLD), service("b")],
     ["gpu 0 whole", "waits: box: no GPU share fits: GPU 0 is held whole"]),
    ("a service allowing two per GPU does not join a GPU holding two", MI300X[:1],
     [service("b0"), service("b1"), service("b2", co={"max_models_per_gpu": 2})],
     ["gpu 0 share 0/4", "gpu 0 share 1/4",
      "waits: box: no GPU share fits: GPU 0 has 2 models and this service allows 2 per GPU"]),
]


@pytest.mark.parametrize(("case", "gpus", "groups", "expected"), TABLE,
                         ids=[t[0] for t in TABLE])
def test_sharing_decisions(case: str, gpus: list[dict[str, Any]], groups: list[Any],
                           expected: list[str]) -> None:
    got, broken = run(gpus, groups)
    for want, seen in zip(expected, got, strict=True):
        assert seen.startswith(want), (case, got)
    assert broken == []


def test_held_shares_come_back_from_the_rows() -> None:
    """What a restart reads back: the rows' shares keep the GPU shared in its K and budget,
    so the next bronze takes another share and gold still cannot take the GPU."""
    share = {"gpu": "0", "share": 0, "shares": 4, "budget_mib": 48_124, "need_mib": 20_000}
    rows = [HeldTask("task-x-r0", "node-box", TaskStatus.RUNNING, "0", "10.0.0.5:20000",
                     False, True, gpu_share=share)]
    got, broken = run(MI300X[:1], [service("b"), service("g", QoS.GOLD)], busy_from(rows),
                      [Holding("box/0", "x", 0, 20_000)])
    # the new bronze gives way, the row of unknown priority does not: gold still waits
    assert got[0] == "gpu 0 share 1/4" and got[1].startswith("waits: box: needs 1 GPU")
    assert broken == []


@pytest.mark.parametrize(("facts", "reason"), [
    ({"cpu_load_percent": 97.5}, "CPU load 97.5% is above the 90% threshold"),
    ({"memory_used_percent": 93}, "memory use 93% is above the 90% threshold"),
    ({"gpu_temperature_c": 88, "cpu_load_percent": 95},
     "CPU load 95% is above the 90% threshold; GPU temperature 88 C is above the 85 C "
     "threshold"),
])
def test_a_hot_node_takes_nothing_new(facts: dict[str, Any], reason: str) -> None:
    (wait,) = decide(service("g", QoS.GOLD), [node(MI300X, facts)], {}, host())
    assert isinstance(wait, Wait) and wait.reason == f"box: takes no new replica: {reason}"


def test_a_node_at_its_thresholds_or_without_figures_takes_replicas() -> None:
    calm = {"cpu_load_percent": 90, "memory_used_percent": 90, "gpu_temperature_c": 85}
    for facts in (calm, {}):
        (start,) = decide(service("g", QoS.GOLD), [node(MI300X, facts)], {}, host())
        assert isinstance(start, Start)


def two_nodes() -> list[Node]:
    return [Node(id=f"node-{n}", name=n, status="online", status_reason="",
                 agent_url="http://10.0.0.5:7070", nomad_node_id=None, facts={},
                 gpus=[dict(g) for g in MI300X], skipped_vendors={}, engines=["vllm"],
                 models=[], last_heartbeat=NOW, created_at=NOW) for n in ("a", "b")]


@pytest.mark.parametrize(("placement", "second_on"), [("binpack", "a"), ("spread", "b")])
def test_binpack_fills_a_node_and_spread_moves_on(placement: str, second_on: str) -> None:
    busy: Busy = {}
    nodes = two_nodes()
    co = {"placement": placement}
    (first,) = decide(service("g0", QoS.GOLD, co=co), nodes, busy, host())
    (second,) = decide(service("g1", QoS.GOLD, co=co), nodes, busy, host())
    assert isinstance(first, Start) and isinstance(second, Start)
    assert (first.node.name, second.node.name) == ("a", second_on)


def test_a_silver_share_starts_with_mps_limits() -> None:
    (start,) = decide(service("s", QoS.SILVER, vram=9_000, vendor=GpuVendor.NVIDIA), [node(A100)],
                      {}, host())
    assert isinstance(start, Start)
    assert (start.env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"],
            start.env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"]) == ("25", f"0={39_726 // 4}M")
    (bronze,) = decide(service("b", vram=9_000, vendor=GpuVendor.NVIDIA), [node(A100)], {},
                       host())
    assert isinstance(bronze, Start) and "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" not in bronze.env
