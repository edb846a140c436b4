"""Shares of a GPU without Nomad: the same rules as the plugin's share devices
(docs/gpu-sharing.md, "Local placement"), on the agents' reported GPUs. Pure.

What is held rides in ``Busy`` (node id -> taken strings) beside GPU indices and ports, as
``share:<gpu>:<n>:<K>:<budget>:<need>``: a shared GPU's index is in the set too, so a whole
fit never takes it, and the share entries say its K, budget and holders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.placement.sharing import GpuAsk
from heteroflow_contracts.gpu_sharing import isolation_for, share_budget_mib

PREFIX = "share:"


@dataclass(frozen=True, slots=True)
class Share:
    gpu: str  # device index, as the vendor's visible-devices variable wants it
    number: int
    shares: int  # K, fixed by the first share taken until the last is released
    budget_mib: int
    need_mib: int

    def token(self) -> str:
        return f"{PREFIX}{self.gpu}:{self.number}:{self.shares}:{self.budget_mib}:{self.need_mib}"

    def as_json(self) -> dict[str, Any]:
        return {"gpu": self.gpu, "share": self.number, "shares": self.shares,
                "budget_mib": self.budget_mib, "need_mib": self.need_mib}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Share:
        return cls(str(raw["gpu"]), int(raw["share"]), int(raw["shares"]),
                   int(raw["budget_mib"]), int(raw["need_mib"]))


def held_shares(taken: set[str]) -> dict[str, list[Share]]:
    """GPU index -> the shares held on it."""
    out: dict[str, list[Share]] = {}
    for token in taken:
        if token.startswith(PREFIX):
            gpu, n, k, budget, need = token[len(PREFIX):].split(":")
            out.setdefault(gpu, []).append(Share(gpu, int(n), int(k), int(budget), int(need)))
    return out


@dataclass(frozen=True, slots=True)
class ShareFit:
    share: Share | None
    vendor: str | None
    reason: str  # "" when it fits


def fit_share(gpus: list[dict[str, Any]], taken: set[str], ask: GpuAsk,
              vendor: str | None) -> ShareFit:
    """A share for ``ask``: on a GPU already shared that has a free share whose budget
    covers the need, else on an idle GPU, which becomes shared in the ask's K with budgets
    of its measured free memory / K. Most-used shared GPUs first (binpack), so idle GPUs
    stay whole for gold services."""
    candidates = [g for g in gpus if g.get("healthy", True)
                  and (vendor is None or g.get("vendor") == vendor)]
    if not candidates:
        kind = f"{vendor} " if vendor else ""
        return ShareFit(None, vendor, f"this machine has no healthy {kind}GPU")
    if ask.isolated:
        isolated = [g for g in candidates
                    if isolation_for(str(g.get("vendor"))) != "none"]
        if not isolated:
            return ShareFit(None, vendor, "silver needs a share with driver-level isolation "
                                          f"(NVIDIA MPS); {candidates[0].get('vendor')} GPUs "
                                          "offer none (docs/gpu-sharing.md)")
        candidates = isolated
    need = ask.need_mib or 0
    held = held_shares(taken)
    reasons: list[str] = []
    for g in sorted(candidates, key=lambda g: (-len(held.get(str(g["index"]), [])),
                                               g["index"])):
        gpu = str(g["index"])
        on_it = held.get(gpu, [])
        if not on_it and gpu in taken:
            reasons.append(f"GPU {gpu} is held whole")
            continue
        if on_it:
            k, budget = on_it[0].shares, on_it[0].budget_mib
            if len(on_it) >= min(k, ask.max_models):
                reasons.append(f"GPU {gpu} has {len(on_it)} of {k} models" if len(on_it) >= k
                               else f"GPU {gpu} has {len(on_it)} models and this service "
                                    f"allows {ask.max_models} per GPU")
                continue
        else:
            k = ask.max_models
            budget = share_budget_mib(int(g.get("memory_free_mb", 0)), k)
        if need > budget:
            reasons.append(f"GPU {gpu}: needs {need} MiB, a share has {budget} MiB "
                           f"({k} shares of the measured free memory)")
            continue
        free = sorted(set(range(k)) - {s.number for s in on_it})
        return ShareFit(Share(gpu, free[0], k, budget, need), str(g.get("vendor")), "")
    return ShareFit(None, vendor, "no GPU share fits: " + "; ".join(reasons))
