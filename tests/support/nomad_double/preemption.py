"""Preemption for service jobs, as Nomad's scheduler does it when the scheduler
configuration enables it (``PreemptionConfig.ServiceSchedulerEnabled``; nomad.hcl's
``default_scheduler_config``): when a placement finds no node with room, allocations of
jobs whose priority is at least 10 below the placing job's may be evicted from a feasible
node to make room (scheduler/preemption.go: ``maxParallelPenalty``-free subset of its
rules: lowest priority first, only allocations that hold what is missing, here devices).

The victims get ``DesiredStatus = "evict"``, ``DesiredDescription = "Preempted by alloc ID
<id>"`` and ``PreemptedByAllocation``; the new allocation lists them in
``PreemptedAllocations``; each victim's job gets an evaluation triggered by "preemption",
whose replacement placement then blocks for want of room (docs/nomad-consul.md).
"""

from __future__ import annotations

import copy
from typing import Any

from .feasibility import device_matches
from .objects import alloc_terminal
from .placement import Choice, Placer
from .scoring import spread_counts

Json = dict[str, Any]
PRIORITY_DELTA = 10  # Nomad preempts only allocations of jobs this much lower in priority


def preempt(placer: Placer, group: Json) -> tuple[Choice, list[Json]] | None:
    """A choice for ``group`` after evicting lower-priority allocations on one node, with
    the victims; None when no node can be freed enough. The plan is left as it was when
    nothing is found."""
    ask = placer.asks.get(group["Name"])
    if ask is None:
        return None
    priority = int(placer.job.get("Priority") or 50)
    requests = [r for t in group.get("Tasks") or [] for r in
                (t.get("Resources") or {}).get("Devices") or []]
    for node in placer.nodes:
        if not placer.feasibility.check(ask, node, placer.new_metric()):
            continue
        victims = sorted(
            (a for a in _live_on(placer, node)
             if int(a["Job"].get("Priority") or 50) <= priority - PRIORITY_DELTA
             and _holds_matching(a, node, requests)),
            key=lambda a: (int(a["Job"].get("Priority") or 50), a["CreateIndex"]))
        saved = (copy.deepcopy(placer.plan.deltas), dict(placer.plan.stop))
        chosen: list[Json] = []
        for victim in victims:
            placer.plan.add_stop(victim, "Preempted")
            chosen.append(victim)
            counts = spread_counts(placer.store, placer.job, placer.plan, group)
            choice = placer._rank(ask, node, placer.new_metric(), counts, set())
            if choice is not None:
                return choice, chosen
        placer.plan.deltas, placer.plan.stop = saved
    return None


def _live_on(placer: Placer, node: Json) -> list[Json]:
    stopped = placer.plan.stop
    return [placer.store.allocs[a] for a in placer.store.usage[node["ID"]].allocs
            if a not in stopped and not alloc_terminal(placer.store.allocs[a])
            and placer.store.allocs[a]["JobID"] != placer.job["ID"]]


def _holds_matching(alloc: Json, node: Json, requests: list[Json]) -> bool:
    groups = {(d["Vendor"], d["Type"], d["Name"]): d
              for d in node["NodeResources"].get("Devices") or []}
    for task in (alloc["AllocatedResources"].get("Tasks") or {}).values():
        for held in task.get("Devices") or []:
            device = groups.get((held["Vendor"], held["Type"], held["Name"]))
            if device is not None and any(device_matches(device, r) for r in requests):
                return True
    return False
