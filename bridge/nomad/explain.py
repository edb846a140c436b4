"""Why is it pending? Nomad's blocked evaluation, in sentences an operator can act on.

Input is ``FailedTGAllocs[group]`` (an AllocationMetric); output is one sentence, e.g.
"no node can take it: 3 nodes have no matching GPU (missing devices); 2 nodes have all
matching GPUs in use".
"""

from __future__ import annotations

from typing import Any

# Nomad's reason strings -> what they mean for an inference service.
_FILTER_WORDS = {
    "missing devices": "have no GPU matching the request (vendor, model or memory)",
    "missing drivers": "have no healthy docker driver",
    "missing compatible host volumes": "lack the model host volume",
    "computed class ineligible": "were ruled out by their node class",
}
_EXHAUSTED_WORDS = {
    "devices: no devices match request": "have all matching GPUs in use",
    "devices: no devices available": "have no free GPU",
    "cpu": "are out of CPU",
    "memory": "are out of memory",
    "network: port collision": "have the requested host port taken",
}
_META_WORDS = {
    "${meta.heteroflow.gpu.cc}": "compute capability",
    "${meta.heteroflow.gpu.vendor}": "GPU vendor",
    "${meta.heteroflow.gpu.count}": "GPU count",
    "${meta.heteroflow.gpu.memory_mb}": "GPU memory (MiB)",
    "${attr.consul.version}": "Consul agent version (no Consul agent on the node?)",
    # the load thresholds (heteroflow_contracts/load.py): the node is too busy or too hot
    "${meta.heteroflow.load.cpu}": "CPU load threshold (%)",
    "${meta.heteroflow.load.memory}": "memory use threshold (%)",
    "${meta.heteroflow.load.gpu_temp}": "GPU temperature threshold (C)",
}


def explain_failed(metric: dict[str, Any]) -> str:
    """One sentence from one group's AllocationMetric."""
    evaluated = int(metric.get("NodesEvaluated") or 0)
    unplaced = int(metric.get("CoalescedFailures") or 0) + 1
    what = "its replica" if unplaced == 1 else f"{unplaced} replicas"
    if evaluated == 0:
        dcs = metric.get("NodesAvailable") or {}
        empty = [dc for dc, n in dcs.items() if not n]
        where = f" (datacenters with no ready node: {', '.join(sorted(empty))})" if empty else ""
        return (f"Nomad cannot place {what}: no node is eligible{where}; check that GPU nodes "
                "are ready, eligible and in the allowed datacenters")
    parts: list[str] = []
    for reason, count in sorted((metric.get("ConstraintFiltered") or {}).items()):
        parts.append(f"{_nodes(count)} {_filtered(reason)}")
    for reason, count in sorted((metric.get("DimensionExhausted") or {}).items()):
        words = _EXHAUSTED_WORDS.get(reason, f"are full ({reason})")
        parts.append(f"{_nodes(count)} {words}")
    if not parts and metric.get("NodesExhausted"):
        parts.append(f"{_nodes(metric['NodesExhausted'])} are full")
    if metric.get("QuotaExhausted"):
        parts.append("the namespace quota is exhausted: " + ", ".join(metric["QuotaExhausted"]))
    detail = "; ".join(parts) or "no feasible node"
    return f"Nomad cannot place {what} ({evaluated} nodes evaluated): {detail}"


def explain_evaluations(evals: list[dict[str, Any]], group: str = "engine") -> str | None:
    """The newest blocked evaluation's reason for ``group``, or None when nothing is blocked."""
    blocked = [e for e in evals if e.get("Status") == "blocked" and
               (e.get("FailedTGAllocs") or {}).get(group)]
    if not blocked:
        failing = [e for e in evals if (e.get("FailedTGAllocs") or {}).get(group)]
        if not failing:
            return None
        blocked = failing
    newest = max(blocked, key=lambda e: int(e.get("CreateIndex") or 0))
    return explain_failed(newest["FailedTGAllocs"][group])


def _filtered(reason: str) -> str:
    if reason in _FILTER_WORDS:
        return _FILTER_WORDS[reason]
    for target, words in _META_WORDS.items():
        if reason.startswith(target):
            return f"fail the {words} rule `{reason}`"
    return f"fail the rule `{reason}`"


def _nodes(count: Any) -> str:
    n = int(count)
    return "1 node" if n == 1 else f"{n} nodes"
