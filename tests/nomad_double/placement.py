"""Choosing a node for one allocation: resource fit, binpack scoring, affinities and spreads.

Follows Nomad's generic stack: nodes are visited in a shuffled order that carries on between
placements of one evaluation; feasible nodes are ranked (ports, devices, cores, then cpu/memory/
disk fit, scored by binpack, device affinity, job anti-affinity, node affinity and spread); the
best of the first `limit` candidates wins (log2 of the node count, at least 2; 100 when affinities
or spreads are present), skipping up to three negatively scored nodes. A node that does not fit
is counted under `DimensionExhausted` with Nomad's dimension text.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from .constraints import Attribute as Attr
from .constraints import (
    check_device_constraint,
    check_node_constraint,
    resolve_device_target,
    resolve_node_target,
)
from .feasibility import Feasibility, GroupAsk, device_matches, exhaust, filter_node
from .objects import alloc_terminal, new_metric
from .state import Store

Json = dict[str, Any]

SKIP_SCORE_THRESHOLD = 0.0
MAX_SKIP = 3
AFFINITY_NODE_LIMIT = 100
BINPACK_MAX = 18.0


@dataclass
class NodeDelta:
    """What the plan being built changes on one node (stops free, placements take)."""

    cpu: int = 0
    memory: int = 0
    disk: int = 0
    devices_freed: set[str] = field(default_factory=set)
    devices_taken: set[str] = field(default_factory=set)
    ports_freed: set[int] = field(default_factory=set)
    ports_taken: set[int] = field(default_factory=set)
    stopped: set[str] = field(default_factory=set)
    placed: list[Json] = field(default_factory=list)


@dataclass
class Plan:
    """A scheduler plan: new allocations, stops (with a reason) and in-place updates."""

    place: list[Json] = field(default_factory=list)
    stop: dict[str, tuple[Json, str]] = field(default_factory=dict)
    update: list[Json] = field(default_factory=list)
    deltas: dict[str, NodeDelta] = field(default_factory=dict)

    def delta(self, node_id: str) -> NodeDelta:
        return self.deltas.setdefault(node_id, NodeDelta())

    def add_stop(self, alloc: Json, reason: str) -> None:
        if alloc["ID"] in self.stop:
            return
        self.stop[alloc["ID"]] = (alloc, reason)
        if alloc_terminal(alloc):
            return
        delta = self.delta(alloc["NodeID"])
        delta.stopped.add(alloc["ID"])
        resources = alloc["AllocatedResources"]
        for task in (resources.get("Tasks") or {}).values():
            delta.cpu -= task["Cpu"]["CpuShares"]
            delta.memory -= task["Memory"]["MemoryMB"]
            for device in task.get("Devices") or []:
                delta.devices_freed.update(device["DeviceIDs"])
        delta.disk -= resources["Shared"]["DiskMB"]
        delta.ports_freed.update(p["Value"] for p in resources["Shared"].get("Ports") or [])

    def add_place(self, alloc: Json) -> None:
        self.place.append(alloc)
        delta = self.delta(alloc["NodeID"])
        delta.placed.append(alloc)
        resources = alloc["AllocatedResources"]
        for task in resources["Tasks"].values():
            delta.cpu += task["Cpu"]["CpuShares"]
            delta.memory += task["Memory"]["MemoryMB"]
            for device in task.get("Devices") or []:
                delta.devices_taken.update(device["DeviceIDs"])
        delta.disk += resources["Shared"]["DiskMB"]
        delta.ports_taken.update(p["Value"] for p in resources["Shared"].get("Ports") or [])

    @property
    def empty(self) -> bool:
        return not (self.place or self.stop or self.update)


@dataclass
class Choice:
    node: Json
    resources: Json
    score: float
    scores: dict[str, float]


class Placer:
    """Node selection for the placements of one evaluation (one job)."""

    def __init__(self, store: Store, job: Json, plan: Plan, rng: random.Random) -> None:
        self.store = store
        self.job = job
        self.plan = plan
        self.rng = rng
        self.feasibility = Feasibility()
        pool = job.get("NodePool") or "default"
        self.nodes_in_pool, ready = store.candidates(pool, tuple(job.get("Datacenters") or ["*"]))
        self.available: dict[str, int] = {}
        for node in ready:
            self.available[node["Datacenter"]] = self.available.get(node["Datacenter"], 0) + 1
        self.nodes = list(ready)
        self.rng.shuffle(self.nodes)
        self.offset = 0
        self.asks: dict[str, GroupAsk] = {}

    def new_metric(self) -> Json:
        return new_metric(dict(self.available), self.job.get("NodePool") or "default",
                          self.nodes_in_pool)

    def select(self, group: Json, penalty_nodes: set[str] | None = None) -> tuple[
            Choice | None, Json]:
        ask = self.asks.get(group["Name"])
        if ask is None:
            ask = self.asks[group["Name"]] = GroupAsk.build(self.job, group)
        metric = self.new_metric()
        count = len(self.nodes)
        limit = max(2, math.ceil(math.log2(count))) if count else 2
        if self._has_affinities(group) or group.get("Spreads") or self.job.get("Spreads"):
            limit = max(limit, AFFINITY_NODE_LIMIT, group["Count"])
        spread_counts = self._spread_counts(group)
        best: Choice | None = None
        taken = 0
        skipped: list[Choice] = []
        for step in range(count):
            node = self.nodes[(self.offset + step) % count]
            metric["NodesEvaluated"] += 1
            if not self.feasibility.check(ask, node, metric):
                continue
            if (ask.distinct_job or ask.distinct_group) and self._collides(
                    node, group, job_wide=ask.distinct_job):
                filter_node(metric, node, "distinct_hosts")
                continue
            choice = self._rank(ask, node, metric, spread_counts, penalty_nodes or set())
            if choice is None:
                continue
            if choice.score < SKIP_SCORE_THRESHOLD and len(skipped) < MAX_SKIP:
                skipped.append(choice)
                continue
            taken += 1
            if best is None or choice.score > best.score:
                best = choice
            if taken >= limit:
                self.offset = (self.offset + step + 1) % count
                break
        else:
            self.offset = 0
            for choice in skipped[: max(0, limit - taken)]:
                if best is None or choice.score > best.score:
                    best = choice
        if best is None and skipped:
            best = max(skipped, key=lambda c: c.score)
        if best is not None:
            metric["ScoreMetaData"] = [{"NodeID": best.node["ID"], "Scores": best.scores,
                                        "NormScore": best.score}]
        return best, metric

    # -- ranking ---------------------------------------------------------------------------

    def _rank(self, ask: GroupAsk, node: Json, metric: Json, spread_counts: list[
            tuple[str, dict[str, int], Json]], penalty_nodes: set[str]) -> Choice | None:
        usage = self.store.usage[node["ID"]]
        delta = self.plan.deltas.get(node["ID"]) or NodeDelta()
        group = ask.group
        ports_used = (usage.ports - delta.ports_freed) | delta.ports_taken
        shared = self._assign_ports(node, group, ports_used, metric)
        if shared is None:
            return None
        devices_used = (usage.devices - delta.devices_freed) | delta.devices_taken
        tasks: dict[str, Json] = {}
        affinity_weight = 0.0
        affinity_sum = 0.0
        for task in group.get("Tasks") or []:
            resources = task.get("Resources") or {}
            assigned = []
            for request in resources.get("Devices") or []:
                offer, matched, total = self._offer_device(node, request, devices_used)
                if offer is None:
                    exhaust(metric, node, f"devices: {matched}")
                    return None
                devices_used = devices_used | set(offer["DeviceIDs"])
                assigned.append(offer)
                affinity_weight += total
                affinity_sum += float(matched)
            cpu = resources.get("CPU") or 0
            cores = resources.get("Cores") or 0
            if cores:
                per_core = int(node["NodeResources"]["Cpu"]["CpuShares"]
                               / max(1, node["NodeResources"]["Cpu"]["TotalCpuCores"]))
                cpu = cores * per_core
            tasks[task["Name"]] = {
                "Cpu": {"CpuShares": cpu, "ReservedCores": None},
                "Memory": {"MemoryMB": resources.get("MemoryMB") or 0,
                           "MemoryMaxMB": resources.get("MemoryMaxMB") or 0},
                "Networks": None, "Devices": assigned or None}
        disk = (group.get("EphemeralDisk") or {}).get("SizeMB") or 0
        node_res = node["NodeResources"]
        reserved = node.get("ReservedResources") or {}
        cap_cpu = node_res["Cpu"]["CpuShares"] - ((reserved.get("Cpu") or {}).get(
            "CpuShares") or 0)
        cap_mem = node_res["Memory"]["MemoryMB"] - ((reserved.get("Memory") or {}).get(
            "MemoryMB") or 0)
        cap_disk = node_res["Disk"]["DiskMB"] - ((reserved.get("Disk") or {}).get(
            "DiskMB") or 0)
        want_cpu = usage.cpu + delta.cpu + sum(t["Cpu"]["CpuShares"] for t in tasks.values())
        want_mem = usage.memory + delta.memory + sum(
            t["Memory"]["MemoryMB"] for t in tasks.values())
        want_disk = usage.disk + delta.disk + disk
        for dimension, want, cap in (("cpu", want_cpu, cap_cpu), ("memory", want_mem, cap_mem),
                                     ("disk", want_disk, cap_disk)):
            if want > cap:
                exhaust(metric, node, dimension)
                return None
        scores: dict[str, float] = {}
        total = 20.0 - (10 ** (1 - want_cpu / cap_cpu) + 10 ** (1 - want_mem / cap_mem))
        scores["binpack"] = min(max(total, 0.0), BINPACK_MAX) / BINPACK_MAX
        if affinity_weight:
            scores["devices"] = affinity_sum / affinity_weight
        collisions = sum(1 for a in self._proposed(node) if a["JobID"] == self.job["ID"]
                         and a["TaskGroup"] == group["Name"])
        if collisions:
            scores["job-anti-affinity"] = -1.0 * (collisions + 1) / max(group["Count"], 1)
        if node["ID"] in penalty_nodes:
            scores["node-reschedule-penalty"] = -1.0
        affinity = self._node_affinity(group, node)
        if affinity:
            scores["node-affinity"] = affinity
        spread = self._spread_score(node, spread_counts, group)
        if spread:
            scores["allocation-spread"] = spread
        resources_out = {"Tasks": tasks,
                         "TaskLifecycles": {t["Name"]: t.get("Lifecycle")
                                            for t in group.get("Tasks") or []},
                         "Shared": {**shared, "DiskMB": disk}}
        return Choice(node, resources_out, sum(scores.values()) / len(scores), scores)

    def _assign_ports(self, node: Json, group: Json, used: set[int],
                      metric: Json) -> Json | None:
        networks = group.get("Networks") or []
        if not networks:
            return {"Networks": None, "Ports": None}
        ask = networks[0]
        ip = node["Attributes"].get("unique.network.ip-address", "")
        low = node["NodeResources"].get("MinDynamicPort") or 20000
        high = node["NodeResources"].get("MaxDynamicPort") or 32000
        taken = set(used)
        reserved_out, dynamic_out, ports = [], [], []
        for port in ask.get("ReservedPorts") or []:
            value = port["Value"]
            if value <= 0 or value > 65535:
                exhaust(metric, node, f"network: invalid port {value} (out of range)")
                return None
            if value in taken:
                exhaust(metric, node,
                        f"network: reserved port collision {port['Label']}={value}")
                return None
            taken.add(value)
            reserved_out.append({**port, "HostNetwork": port.get("HostNetwork") or "default"})
            ports.append({"Label": port["Label"], "Value": value, "To": port.get("To") or 0,
                          "HostIP": ip, "IgnoreCollision": False})
        for port in ask.get("DynamicPorts") or []:
            value = self._free_port(low, high, taken)
            if value is None:
                exhaust(metric, node, "network: dynamic port selection failed")
                return None
            taken.add(value)
            dynamic_out.append({**port, "Value": value,
                                "HostNetwork": port.get("HostNetwork") or "default"})
            ports.append({"Label": port["Label"], "Value": value, "To": port.get("To") or 0,
                          "HostIP": ip, "IgnoreCollision": False})
        network = {"Mode": ask.get("Mode") or "host", "Device": "", "CIDR": "", "IP": ip,
                   "Hostname": ask.get("Hostname") or "", "MBits": 0, "DNS": ask.get("DNS"),
                   "ReservedPorts": reserved_out or None, "DynamicPorts": dynamic_out or None,
                   "CNI": None}
        return {"Networks": [network], "Ports": ports or None}

    def _free_port(self, low: int, high: int, taken: set[int]) -> int | None:
        for _ in range(20):
            candidate = self.rng.randint(low, high)
            if candidate not in taken:
                return candidate
        return next((p for p in range(low, high + 1) if p not in taken), None)

    def _offer_device(self, node: Json, request: Json, used: set[str]) -> tuple[
            Json | None, float | str, float]:
        """createOffer: the best-scoring device group with enough free healthy instances."""
        devices = node["NodeResources"].get("Devices") or []
        if not devices:
            return None, "no devices available", 0.0
        wanted = request.get("Count") or 1
        best: tuple[float, float, Json] | None = None
        affinities = request.get("Affinities") or []
        total_weight = sum(abs(a.get("Weight") or 0) for a in affinities)
        for device in devices:
            if not device_matches(device, request):
                continue
            free = [i["ID"] for i in device.get("Instances") or []
                    if i.get("Healthy") and i["ID"] not in used
                    and _instance_allowed(i["ID"], request, device)][:wanted]
            if len(free) < wanted:
                continue
            matched = 0.0
            for affinity in affinities:
                left = resolve_device_target(affinity.get("LTarget") or "", device)
                right = resolve_device_target(affinity.get("RTarget") or "", device)
                if check_device_constraint(affinity.get("Operand") or "=", left, right):
                    matched += affinity.get("Weight") or 0
            score = matched / total_weight if total_weight else 0.0
            if best is None or score >= best[0]:
                offer = {"Vendor": device["Vendor"], "Type": device["Type"],
                         "Name": device["Name"], "DeviceIDs": free}
                if best is None or score > best[0]:
                    best = (score, matched, offer)
        if best is None:
            return None, "no devices match request", 0.0
        return best[2], best[1], total_weight

    # -- scoring helpers -------------------------------------------------------------------

    def _proposed(self, node: Json) -> list[Json]:
        delta = self.plan.deltas.get(node["ID"])
        existing = [self.store.allocs[a] for a in self.store.usage[node["ID"]].allocs]
        if delta is None:
            return existing
        return [a for a in existing if a["ID"] not in delta.stopped] + delta.placed

    def _collides(self, node: Json, group: Json, job_wide: bool) -> bool:
        for alloc in self._proposed(node):
            if alloc["JobID"] != self.job["ID"] or alloc["Namespace"] != self.job["Namespace"]:
                continue
            if job_wide or alloc["TaskGroup"] == group["Name"]:
                return True
        return False

    def _has_affinities(self, group: Json) -> bool:
        return bool(self.job.get("Affinities") or group.get("Affinities") or any(
            t.get("Affinities") for t in group.get("Tasks") or []))

    def _node_affinity(self, group: Json, node: Json) -> float:
        affinities = list(self.job.get("Affinities") or []) + list(group.get("Affinities") or [])
        for task in group.get("Tasks") or []:
            affinities.extend(task.get("Affinities") or [])
        if not affinities:
            return 0.0
        total = sum(abs(a.get("Weight") or 0) for a in affinities)
        matched = sum(a.get("Weight") or 0 for a in affinities
                      if check_node_constraint(a, node))
        return matched / total if total else 0.0

    def _spread_counts(self, group: Json) -> list[tuple[str, dict[str, int], Json]]:
        spreads = list(group.get("Spreads") or []) + list(self.job.get("Spreads") or [])
        if not spreads:
            return []
        out = []
        live = [a for a in self.store.job_allocs((self.job["Namespace"], self.job["ID"]))
                if a["TaskGroup"] == group["Name"] and not alloc_terminal(a)
                and a["ID"] not in self.plan.stop]
        live += [a for a in self.plan.place if a["TaskGroup"] == group["Name"]]
        for spread in spreads:
            counts: dict[str, int] = {}
            for alloc in live:
                node = self.store.nodes.get(alloc["NodeID"])
                if node is None:
                    continue
                value, ok = resolve_node_target(spread.get("Attribute") or "", node)
                if ok and value is not None:
                    counts[value] = counts.get(value, 0) + 1
            out.append((spread.get("Attribute") or "", counts, spread))
        return out

    def _spread_score(self, node: Json, spread_counts: list[tuple[str, dict[str, int], Json]],
                      group: Json) -> float:
        if not spread_counts:
            return 0.0
        total_weight = sum(s.get("Weight") or 0 for _, _, s in spread_counts) or 1
        score = 0.0
        for attribute, counts, spread in spread_counts:
            value, ok = resolve_node_target(attribute, node)
            targets = spread.get("SpreadTarget") or []
            if not targets:
                score += _even_spread(counts, value if ok else None)
                continue
            desired = {t["Value"]: t["Percent"] / 100 * group["Count"] for t in targets}
            remaining = group["Count"] - sum(desired.values())
            if 0 < sum(desired.values()) < group["Count"]:
                desired["*"] = remaining
            want = desired.get(value or "", desired.get("*")) if ok else desired.get("*")
            if want is None or want == 0:
                score -= 1.0
                continue
            used = counts.get(value or "", 0) + 1
            score += ((want - used) / want) * ((spread.get("Weight") or 0) / total_weight)
        return score


def _even_spread(counts: dict[str, int], value: str | None) -> float:
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


def _instance_allowed(instance_id: str, request: Json, device: Json) -> bool:
    for constraint in request.get("Constraints") or []:
        if constraint.get("LTarget") == "${device.ids}":
            target = constraint.get("RTarget") or ""
        elif constraint.get("RTarget") == "${device.ids}":
            target = constraint.get("LTarget") or ""
        else:
            continue
        if not check_device_constraint(constraint.get("Operand") or "=", Attr.parse(target),
                                       Attr(str_val=instance_id)):
            return False
    return True
