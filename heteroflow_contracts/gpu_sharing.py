"""GPU sharing as the plugin, the bridge and the tests agree on it (docs/gpu-sharing.md):
the device types a GPU is offered as, how a share's device ID names its GPU, the memory
budget of one share, and the rules of co-scheduling that both placements apply.

A GPU is offered either whole (``<vendor>/gpu``, one instance: its device ID) or as K
shares (``<vendor>/gpu-share``, K instances ``<device id>@share<i>``), never both at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

WHOLE_TYPE = "gpu"
SHARE_TYPE = "gpu-share"
MAX_SHARES = 8  # the seed's "max models per GPU 1-8"
_SHARE_MARK = "@share"

# What a vendor's share isolates at the driver level (silver needs one that is not "none"):
# NVIDIA's MPS limits a client's threads and pinned memory; the others offer nothing a
# plugin can set per process, so their shares are accounted in software only.
ISOLATION = {"nvidia": "mps"}
NO_ISOLATION = "none"


def share_id(device_id: str, index: int) -> str:
    return f"{device_id}{_SHARE_MARK}{index}"


def gpu_of(instance_id: str) -> tuple[str, int | None]:
    """The GPU's device ID an instance belongs to, and the share number (None: whole)."""
    head, mark, tail = instance_id.rpartition(_SHARE_MARK)
    if mark and tail.isdigit():
        return head, int(tail)
    return instance_id, None


def relayout_refusal(gpu_id: str, held_instance_ids: Iterable[str]) -> str | None:
    """Why a GPU's form (whole or K shares) may not change now: something holds it or a
    share of it (invariant 2 of docs/gpu-sharing.md); None: it may."""
    holders = sorted(i for i in held_instance_ids if gpu_of(i)[0] == gpu_id)
    if holders:
        return (f"GPU {gpu_id} is held ({', '.join(holders)}); its form changes only when "
                "nothing holds it")
    return None


def mps_limits(shares_held: int, shares: int, budget_mib: int) -> dict[str, str]:
    """NVIDIA MPS's per-client limits for holding ``shares_held`` of a GPU's ``shares``
    (each of ``budget_mib``): 1/K of the SMs per share and the shares' memory, for the one
    GPU the task sees as device 0. The CUDA runtime applies them under an MPS daemon."""
    percent = min(100, max(1, 100 * shares_held // max(1, shares)))
    return {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": str(percent),
            "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": f"0={shares_held * budget_mib}M"}


def share_budget_mib(free_mib: int, shares: int) -> int:
    """One share's memory budget: the GPU's measured free memory split K ways (rounded
    down, so K budgets never exceed what was free)."""
    return max(0, free_mib) // max(1, shares)


def isolation_for(vendor: str) -> str:
    return ISOLATION.get(vendor, NO_ISOLATION)


@dataclass(frozen=True, slots=True)
class CoSchedule:
    """The seed's co_schedule of a service (defaults: one model per GPU, no overcommit)."""

    max_models_per_gpu: int = 1
    estimated_vram_mb: int | None = None
    vram_overcommit_ratio: float = 1.0
    allow_preemption: bool = False
    placement: str = "binpack"  # or "spread": fill nodes up, or put replicas apart

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> CoSchedule:
        raw = raw or {}
        ratio = float(raw.get("vram_overcommit_ratio") or 1.0)
        estimate = raw.get("estimated_vram_mb")
        return cls(max_models_per_gpu=min(MAX_SHARES, max(1, int(raw.get(
                       "max_models_per_gpu") or 1))),
                   estimated_vram_mb=int(estimate) if estimate else None,
                   vram_overcommit_ratio=min(2.0, max(1.0, ratio)),
                   allow_preemption=bool(raw.get("allow_preemption", False)),
                   placement="spread" if raw.get("placement") == "spread" else "binpack")


def needed_mib(estimate_mib: int, overcommit: float) -> int:
    """What a model must find in a share's budget: its estimate over the overcommit ratio
    (1.5 lets a 15 GiB model into a 10 GiB budget), rounded up."""
    return math.ceil(estimate_mib / min(2.0, max(1.0, overcommit)))
