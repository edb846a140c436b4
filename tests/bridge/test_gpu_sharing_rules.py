"""The pure sharing rules both placements use (bridge/placement/sharing.py), and the
invariant checker itself catching each violation (docs/gpu-sharing.md, "Invariants")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.domain.models import Node, QoS
from bridge.domain.status import TaskStatus
from bridge.nomad.allocations import parse_alloc, task_status_for
from bridge.placement.sharing import gpu_ask, scanned_estimate
from heteroflow_contracts.gpu_sharing import relayout_refusal
from heteroflow_contracts.load import LoadLimits
from tests.support.factories import make_task_group
from tests.support.gpu_invariants import Holding, SharedGpu, violations
from tests.support.jobspec_render import rendered

CO = {"max_models_per_gpu": 4, "vram_overcommit_ratio": 1.5}


@pytest.mark.parametrize(("qos", "gpus", "co", "vram", "want"), [
    (QoS.GOLD, 1, None, 20_000, ("gpu", 1, False, 20_000, 1)),
    (QoS.GOLD, 2, None, 20_000, ("gpu", 2, False, 10_000, 1)),
    (QoS.BRONZE, 1, CO, 60_000, ("gpu-share", 1, False, 40_000, 4)),
    (QoS.SILVER, 1, {"max_models_per_gpu": 2}, 9_000, ("gpu-share", 1, True, 9_000, 2)),
    # a tensor-parallel service takes whole GPUs whatever its tier: a share is one GPU's
    (QoS.BRONZE, 2, CO, 20_000, ("gpu", 2, False, 10_000, 4)),
])
def test_what_a_task_asks(qos: QoS, gpus: int, co: dict[str, Any] | None, vram: int,
                          want: tuple[str, int, bool, int, int]) -> None:
    group = make_task_group(qos=qos, gpu_required=gpus, co_schedule=co,
                            estimated_gpu_memory_mb=vram)
    ask = gpu_ask(group, gpus)
    assert (ask.device_type, ask.gpus, ask.isolated, ask.need_mib, ask.max_models) == want


def node(models: list[dict[str, Any]]) -> Node:
    now = datetime.now(UTC)
    return Node(id="n1", name="box", status="online", status_reason="", agent_url=None,
                nomad_node_id=None, facts={}, gpus=[], skipped_vendors={}, engines=[],
                models=models, last_heartbeat=now, created_at=now)


def test_the_agents_estimate_is_used_unless_the_user_gives_a_number() -> None:
    path = "/models/qwen"
    scan = scanned_estimate(path, [node([{"path": path, "estimated_vram_mb": 1883,
                                          "vram_explanation": "weights 257 MiB + ..."}])])
    assert scan == (1883, "weights 257 MiB + ...")
    ask = gpu_ask(make_task_group(model_path=path, qos=QoS.BRONZE), 1, scan)
    assert ask.need_mib == 1883 and "the agent's estimate (weights 257 MiB" in ask.note
    given = gpu_ask(make_task_group(estimated_gpu_memory_mb=5000), 1, scan)
    assert given.need_mib == 5000 and "estimated_gpu_memory_mb" in given.note
    assert scanned_estimate("/models/other", [node([])]) is None


def test_a_held_gpu_keeps_its_form() -> None:
    assert relayout_refusal("G1", ["G2", "G1@share3"]) == (
        "GPU G1 is held (G1@share3); its form changes only when nothing holds it")
    assert relayout_refusal("G1", ["G2@share0"]) is None


def test_the_checker_catches_each_violation() -> None:
    held = [Holding("n/A", "a1", None, None), Holding("n/A", "a2", None, None),
            Holding("n/B", "b1", None, None), Holding("n/B", "b2", 0, 10),
            Holding("n/C", "c1", 0, 10), Holding("n/C", "c2", 0, 10),
            Holding("n/C", "c3", 1, 900)]
    shared = {"n/B": SharedGpu(2, 100), "n/C": SharedGpu(2, 100, free_mib=150)}
    assert violations(held, shared) == [
        "n/A: whole GPU held by 2: ['a1', 'a2']",
        "n/B: held whole by ['b1'] and as shares by ['b2']",
        "n/C: one share held twice: [0, 0, 1]",
        "n/C: 3 holders for 2 shares",
        "n/C: c3 needs 900 MiB of a 100 MiB share",
        "n/C: 2 x 100 MiB budgets exceed 150 MiB free"]


@pytest.mark.parametrize("client", ["running", "complete"])
def test_a_preempted_allocation_puts_its_task_back_to_pending_with_why(client: str) -> None:
    alloc = parse_alloc({"ID": "a1", "Name": "hf-tp.engine[0]", "JobID": "hf-tp",
                         "NodeName": "gpu-mi300x-01", "ClientStatus": client,
                         "DesiredStatus": "evict",
                         "PreemptedByAllocation": "5f0c2a9e-0000-0000-0000-000000000000"})
    assert alloc is not None
    status, why = task_status_for(alloc)
    assert status is TaskStatus.PENDING
    assert why.startswith("preempted on gpu-mi300x-01 by a higher-priority service (Nomad "
                          "allocation 5f0c2a9e) that needed its GPU; ")


@pytest.mark.parametrize(("placement", "spread"), [("binpack", False), ("spread", True)])
async def test_spread_is_a_per_service_choice_in_the_jobspec(placement: str,
                                                             spread: bool) -> None:
    hcl = await rendered(co_schedule={"placement": placement})
    assert ('attribute = "${node.unique.id}"' in hcl) is spread


async def test_the_load_thresholds_become_constraints() -> None:
    hcl = await rendered(load=LoadLimits(cpu_percent=75))
    assert 'attribute = "${meta.heteroflow.load.cpu}"\n    operator  = "<="\n' \
           '    value     = "75"' in hcl
    assert "${meta.heteroflow.load.gpu_temp}" in hcl and "heteroflow.load" not in await rendered()
