"""What a service asks of a GPU, decided alike by both placements (docs/gpu-sharing.md):
whole GPUs or one share, how much memory it needs there, and where that figure came from.
Pure: no I/O, so the table tests give fixed groups and nodes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bridge.domain.models import Node, QoS, TaskGroup
from heteroflow_contracts.gpu_sharing import (
    SHARE_TYPE,
    WHOLE_TYPE,
    CoSchedule,
    needed_mib,
)

# Nomad job priority per tier (the Nomad placement renders it; local placement preempts by it:
# only a holder at least PREEMPT_DELTA lower gives way, as in Nomad's scheduler)
QOS_PRIORITY = {QoS.GOLD: 80, QoS.SILVER: 50, QoS.BRONZE: 20}
PREEMPT_DELTA = 10


@dataclass(frozen=True, slots=True)
class GpuAsk:
    """What one task asks: ``gpus`` whole GPUs, or one share of one GPU."""

    shared: bool
    gpus: int  # whole GPUs (1 when shared)
    isolated: bool  # silver: a share with driver-level isolation
    per_gpu_mib: int | None  # the estimate per GPU, before overcommit
    need_mib: int | None  # what a device's memory must cover (a share's budget: after it)
    max_models: int  # K this service accepts on a shared GPU
    note: str  # where the figures came from, for the jobspec comment and "why pending"

    @property
    def device_type(self) -> str:
        return SHARE_TYPE if self.shared else WHOLE_TYPE


def scanned_estimate(model_path: str, nodes: Iterable[Node]) -> tuple[int, str] | None:
    """The agents' VRAM estimate for this model (the largest if they disagree, so it fits
    wherever it is given), with the agent's explanation."""
    found = [(int(m["estimated_vram_mb"]), str(m.get("vram_explanation") or ""))
             for n in nodes for m in n.models
             if m.get("path") == model_path and m.get("estimated_vram_mb")]
    return max(found) if found else None


def gpu_ask(group: TaskGroup, gpus: int, scanned: tuple[int, str] | None = None) -> GpuAsk:
    """Gold, or more than one GPU per task: whole GPUs; silver and bronze: one share.

    The estimate is the user's number (estimated_gpu_memory_mb, else co_schedule's
    estimated_vram_mb), else the agents' scan of the model; it is split over the GPUs, and a
    share's need is the per-GPU figure over the overcommit ratio.
    """
    co = CoSchedule.parse(group.co_schedule)
    shared = group.qos is not QoS.GOLD and gpus == 1
    total, source = _estimate(group, co, scanned)
    per_gpu = -(-total // max(1, gpus)) if total is not None and gpus else None
    need = per_gpu
    split = f" split over {gpus} GPUs" if gpus > 1 else ""
    note = (source if per_gpu is None
            else f"{total} MiB from {source}{split} = {per_gpu} MiB per GPU")
    if shared and per_gpu is not None:
        need = needed_mib(per_gpu, co.vram_overcommit_ratio)
        if co.vram_overcommit_ratio > 1.0:
            note += f"; overcommit {co.vram_overcommit_ratio:g}: needs {need} MiB of a share"
    return GpuAsk(shared=shared, gpus=1 if shared else max(1, gpus),
                  isolated=group.qos is QoS.SILVER and shared, per_gpu_mib=per_gpu,
                  need_mib=need, max_models=co.max_models_per_gpu, note=note)


def _estimate(group: TaskGroup, co: CoSchedule,
              scanned: tuple[int, str] | None) -> tuple[int | None, str]:
    if group.gpu_required == 0:
        return None, "CPU only: no GPU memory needed"
    if group.estimated_gpu_memory_mb is not None:
        return group.estimated_gpu_memory_mb, "estimated_gpu_memory_mb"
    if co.estimated_vram_mb is not None:
        return co.estimated_vram_mb, "co_schedule.estimated_vram_mb"
    if scanned is not None:
        mib, why = scanned
        return mib, "the agent's estimate" + (f" ({why})" if why else "")
    return None, ("no VRAM filter: the model files are not readable here and no "
                  "estimated_gpu_memory_mb was given")
