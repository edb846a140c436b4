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
from dataclasses import dataclass
from typing import Any

from .constraints import Attribute as Attr
from .constraints import (
    check_device_constraint,
    resolve_device_target,
)
from .feasibility import Feasibility, GroupAsk, device_matches, exhaust, filter_node
from .objects import new_metric
from .plan import NodeDelta, Plan
from .scoring import SpreadCounts, has_affinities, node_affinity, spread_counts, spread_score
from .state import Store

Json = dict[str, Any]

SKIP_SCORE_THRESHOLD = 0.0
MAX_SKIP = 3
AFFINITY_NODE_LIMIT = 100
BINPACK_MAX = 18.0


@dataclass
class DeviceOffer:
    """Device instances offered for one request, with its affinity weights."""

    resource: Json
    matched_weight: float
    total_weight: float


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
        if has_affinities(self.job, group) or group.get("Spreads") or self.job.get("Spreads"):
            limit = max(limit, AFFINITY_NODE_LIMIT, group["Count"])
        counts = spread_counts(self.store, self.job, self.plan, group)
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
            choice = self._rank(ask, node, metric, counts, penalty_nodes or set())
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

    def _rank(self, ask: GroupAsk, node: Json, metric: Json, counts: SpreadCounts,
              penalty_nodes: set[str]) -> Choice | None:
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
                offer = self._offer_device(node, request, devices_used)
                if isinstance(offer, str):
                    exhaust(metric, node, f"devices: {offer}")
                    return None
                devices_used = devices_used | set(offer.resource["DeviceIDs"])
                assigned.append(offer.resource)
                affinity_weight += offer.total_weight
                affinity_sum += offer.matched_weight
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
        affinity = node_affinity(self.job, group, node)
        if affinity:
            scores["node-affinity"] = affinity
        spread = spread_score(node, counts, group)
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

    def _offer_device(self, node: Json, request: Json, used: set[str]) -> DeviceOffer | str:
        """createOffer: the best-scoring device group with enough free healthy instances,
        or the reason there is none."""
        devices = node["NodeResources"].get("Devices") or []
        if not devices:
            return "no devices available"
        wanted = request.get("Count") or 1
        best: DeviceOffer | None = None
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
            if best is None or matched > best.matched_weight:
                best = DeviceOffer({"Vendor": device["Vendor"], "Type": device["Type"],
                                    "Name": device["Name"], "DeviceIDs": free},
                                   matched, total_weight)
        return best if best is not None else "no devices match request"

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
