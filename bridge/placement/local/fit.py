"""First fit of a task's GPUs on this machine (the one-machine default), with the reason
when they do not fit. GPUs are the agent's reported devices; the busiest are used last."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Fit:
    gpu_ids: tuple[str, ...]  # device indices as the vendor's visible-devices variable wants
    vendor: str | None
    reason: str  # why it does not fit ("" when it does)

    @property
    def ok(self) -> bool:
        return not self.reason


def fit_gpus(
    gpus: list[dict[str, Any]], busy: set[str], count: int, vram_per_gpu_mb: int | None,
    vendor: str | None,
) -> Fit:
    """Pick ``count`` healthy, idle GPUs (of ``vendor`` if given) with the most free memory."""
    if count == 0:
        return Fit((), None, "")
    candidates = [g for g in gpus if g.get("healthy", True)
                  and (vendor is None or g.get("vendor") == vendor)]
    if not candidates:
        kind = f"{vendor} " if vendor else ""
        return Fit((), vendor, f"this machine has no healthy {kind}GPU")
    free = [g for g in candidates if str(g["index"]) not in busy]
    if vram_per_gpu_mb:
        roomy = [g for g in free if int(g.get("memory_free_mb", 0)) >= vram_per_gpu_mb]
    else:
        roomy = free
    if len(roomy) < count:
        detail = (f"{len(free)} of {len(candidates)} GPUs are free"
                  + (f", {len(roomy)} with {vram_per_gpu_mb} MiB free" if vram_per_gpu_mb
                     else ""))
        return Fit((), vendor, f"needs {count} GPU(s); {detail}")
    chosen = sorted(roomy, key=lambda g: (-int(g.get("memory_free_mb", 0)), g["index"]))[:count]
    return Fit(tuple(str(g["index"]) for g in sorted(chosen, key=lambda g: g["index"])),
               str(chosen[0].get("vendor")), "")
