"""Placement preferences: node affinities and spreads, scored like Nomad's rank iterators.

Scores are in [-1, 1] and averaged with the binpack score by the placer. A spread without
targets aims at an even count per attribute value; with targets, at the given percentages
(the remainder goes to an implicit `*` target).
"""

from __future__ import annotations

from typing import Any

from .constraints import check_node_constraint, resolve_node_target
from .objects import alloc_terminal
from .plan import Plan
from .state import Store

Json = dict[str, Any]
SpreadCounts = list[tuple[str, dict[str, int], Json]]


def has_affinities(job: Json, group: Json) -> bool:
    return bool(job.get("Affinities") or group.get("Affinities") or any(
        t.get("Affinities") for t in group.get("Tasks") or []))


def node_affinity(job: Json, group: Json, node: Json) -> float:
    """Sum of matched affinity weights over the sum of their absolute weights."""
    affinities = list(job.get("Affinities") or []) + list(group.get("Affinities") or [])
    for task in group.get("Tasks") or []:
        affinities.extend(task.get("Affinities") or [])
    if not affinities:
        return 0.0
    total = sum(abs(a.get("Weight") or 0) for a in affinities)
    matched = sum(a.get("Weight") or 0 for a in affinities if check_node_constraint(a, node))
    return matched / total if total else 0.0


def spread_counts(store: Store, job: Json, plan: Plan, group: Json) -> SpreadCounts:
    """Per spread: how many of the group's live and proposed allocs sit on each value."""
    spreads = list(group.get("Spreads") or []) + list(job.get("Spreads") or [])
    if not spreads:
        return []
    live = [a for a in store.job_allocs((job["Namespace"], job["ID"]))
            if a["TaskGroup"] == group["Name"] and not alloc_terminal(a)
            and a["ID"] not in plan.stop]
    live += [a for a in plan.place if a["TaskGroup"] == group["Name"]]
    out = []
    for spread in spreads:
        counts: dict[str, int] = {}
        for alloc in live:
            node = store.nodes.get(alloc["NodeID"])
            if node is None:
                continue
            value, ok = resolve_node_target(spread.get("Attribute") or "", node)
            if ok and value is not None:
                counts[value] = counts.get(value, 0) + 1
        out.append((spread.get("Attribute") or "", counts, spread))
    return out


def spread_score(node: Json, counts_by_spread: SpreadCounts, group: Json) -> float:
    if not counts_by_spread:
        return 0.0
    total_weight = sum(s.get("Weight") or 0 for _, _, s in counts_by_spread) or 1
    score = 0.0
    for attribute, counts, spread in counts_by_spread:
        value, ok = resolve_node_target(attribute, node)
        targets = spread.get("SpreadTarget") or []
        if not targets:
            score += _even_spread(counts, value if ok else None)
            continue
        desired = {t["Value"]: t["Percent"] / 100 * group["Count"] for t in targets}
        if 0 < sum(desired.values()) < group["Count"]:
            desired["*"] = group["Count"] - sum(desired.values())
        want = desired.get(value or "", desired.get("*")) if ok else desired.get("*")
        if want is None or want == 0:
            score -= 1.0
            continue
        used = counts.get(value or "", 0) + 1
        score += ((want - used) / want) * ((spread.get("Weight") or 0) / total_weight)
    return score


def _even_spread(counts: dict[str, int], value: str | None) -> float:
    """evenSpreadScoreBoost: favour values with the fewest allocations."""
    if not counts:
        return 0.0
    if value is None:
        return -1.0
    current = counts.get(value, 0)
    low, high = min(counts.values()), max(counts.values())
    if current != low:
        return (low - current) / low if low else -1.0
    if low == high:
        return -1.0
    if low == 0:
        return 1.0
    return (high - low) / low
