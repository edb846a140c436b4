"""The invariants of docs/gpu-sharing.md, checked over what is held: no whole GPU held twice,
no GPU held both whole and as shares, no GPU held beyond its K shares, no holder's need
beyond its share's budget, and no GPU's budgets beyond its measured free memory.

Fed by the Nomad double's allocations and nodes (``from_double``) or by local placement's
decisions (the local tests build ``Holding``s from them); a test asserts the list is empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from heteroflow_contracts.gpu_sharing import SHARE_TYPE, gpu_of

Json = dict[str, Any]
_MIB = re.compile(r"^\s*(\d+)\s*MiB\s*$")


@dataclass(frozen=True, slots=True)
class Holding:
    gpu: str  # "<node>/<device id>": a GPU, whole or shared
    holder: str  # the allocation or task
    share: int | None  # the share number; None: the whole GPU
    need_mib: int | None  # what the holder asked a device's memory to cover


@dataclass(frozen=True, slots=True)
class SharedGpu:
    shares: int
    budget_mib: int
    free_mib: int | None = None  # measured when the budget was fixed, where known


def violations(held: Iterable[Holding], shared: dict[str, SharedGpu]) -> list[str]:
    found: list[str] = []
    by_gpu: dict[str, list[Holding]] = {}
    for h in held:
        by_gpu.setdefault(h.gpu, []).append(h)
    for gpu, holders in sorted(by_gpu.items()):
        whole = [h.holder for h in holders if h.share is None]
        parts = [h for h in holders if h.share is not None]
        if len(whole) > 1:
            found.append(f"{gpu}: whole GPU held by {len(whole)}: {sorted(whole)}")
        if whole and parts:
            found.append(f"{gpu}: held whole by {whole} and as shares by "
                         f"{sorted(h.holder for h in parts)}")
        if not parts:
            continue
        layout = shared.get(gpu)
        if layout is None:
            found.append(f"{gpu}: shares held but the GPU is not shared")
            continue
        numbers = [h.share for h in parts]
        if len(numbers) != len(set(numbers)):
            found.append(f"{gpu}: one share held twice: {sorted(numbers)}")  # type: ignore
        if len(parts) > layout.shares:
            found.append(f"{gpu}: {len(parts)} holders for {layout.shares} shares")
        for h in parts:
            if h.need_mib is not None and h.need_mib > layout.budget_mib:
                found.append(f"{gpu}: {h.holder} needs {h.need_mib} MiB of a "
                             f"{layout.budget_mib} MiB share")
    for gpu, layout in sorted(shared.items()):
        if layout.free_mib is not None and layout.shares * layout.budget_mib > layout.free_mib:
            found.append(f"{gpu}: {layout.shares} x {layout.budget_mib} MiB budgets exceed "
                         f"{layout.free_mib} MiB free")
    return found


def from_double(allocations: Iterable[Json], nodes: Iterable[Json]) -> list[str]:
    """The violations among the double's live allocations (full allocation JSON, with its
    Job) on its nodes (full node JSON)."""
    shared: dict[str, SharedGpu] = {}
    for node in nodes:
        for group in (node.get("NodeResources") or {}).get("Devices") or []:
            if group["Type"] != SHARE_TYPE:
                continue
            budget = int((group["Attributes"].get("memory") or {}).get("Int") or 0)
            counts: dict[str, int] = {}
            for instance in group["Instances"]:
                gpu = gpu_of(instance["ID"])[0]
                counts[gpu] = counts.get(gpu, 0) + 1
            for gpu, k in counts.items():
                shared[f"{node['ID']}/{gpu}"] = SharedGpu(k, budget)
    held = []
    for alloc in allocations:
        if alloc["DesiredStatus"] != "run" or alloc["ClientStatus"] in (
                "complete", "failed", "lost"):
            continue
        needs = _needs(alloc["Job"])
        for task, resources in alloc["AllocatedResources"]["Tasks"].items():
            for device in resources.get("Devices") or []:
                for instance in device["DeviceIDs"]:
                    gpu, share = gpu_of(instance)
                    held.append(Holding(f"{alloc['NodeID']}/{gpu}", alloc["ID"], share,
                                        needs.get(task)))
    return violations(held, shared)


def _needs(job: Json) -> dict[str, int | None]:
    """Per task, the memory its device request's constraint asks for."""
    out: dict[str, int | None] = {}
    for group in job["TaskGroups"]:
        for task in group["Tasks"]:
            need = None
            for request in (task.get("Resources") or {}).get("Devices") or []:
                for c in request.get("Constraints") or []:
                    match = _MIB.match(str(c.get("RTarget", "")))
                    if c.get("LTarget") == "${device.attr.memory}" and match:
                        need = int(match.group(1))
            out[task["Name"]] = need
    return out
