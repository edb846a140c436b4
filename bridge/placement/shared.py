"""What both placements decide alike: which tasks hold their GPUs, the engine, VRAM per GPU."""

from __future__ import annotations

from collections.abc import Collection

from bridge.domain.engines import ENGINES, chain_for
from bridge.domain.models import Engine, GpuVendor, TaskGroup
from bridge.domain.status import TaskStatus

T = TaskStatus
# Tasks holding their GPUs (a sleep that released GPU memory gives them back).
HOLDING = frozenset({T.SCHEDULED, T.STARTING, T.RUNNING, T.WAKING, T.SLEEPING, T.STOPPING})


def default_vendor(engine: Engine | None) -> GpuVendor:
    """The vendor when none was asked for: NVIDIA wherever the engine runs there."""
    if engine is None or GpuVendor.NVIDIA in ENGINES[engine].vendors:
        return GpuVendor.NVIDIA
    return sorted(ENGINES[engine].vendors)[0]


def engine_for_node(group: TaskGroup, installed: Collection[str],
                    vendor: GpuVendor | None) -> Engine:
    """The asked-for engine, else the first of the vendor's chain that the node has
    installed (the chain's last when none is); CPU only means llama.cpp."""
    if group.engine is not None:
        return group.engine
    if vendor is None:
        return Engine.LLAMACPP
    for engine in chain_for(vendor):
        if engine.value in installed:
            return engine
    return chain_for(vendor)[-1]


def vram_per_gpu_mb(group: TaskGroup, gpus: int) -> int | None:
    """The group's estimate split evenly over its GPUs (rounded up); None: no estimate."""
    if not gpus or group.estimated_gpu_memory_mb is None:
        return None
    return -(-group.estimated_gpu_memory_mb // gpus)
