"""Node feasibility: does a task group fit a node at all, ignoring what is in use?

Mirrors the checkers of Nomad's generic stack, in its order: job constraints, drivers, group
and task constraints, devices, network mode, host volumes. A rejected node is counted in the
metric under the exact reason Nomad uses (`missing devices`, `missing drivers`, or the
constraint rendered as `LTarget Operand RTarget`). Results are cached per computed node class
within one evaluation, and later nodes of a class already found ineligible are reported as
`computed class ineligible`, as Nomad does; constraints on unique values escape the cache.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .constraints import (
    check_device_constraint,
    check_node_constraint,
    escapes_class,
    resolve_device_target,
)

Json = dict[str, Any]


def computed_class(node: Json) -> str:
    """The node's class hash over what placement depends on (not `unique.*` values)."""
    resources = node.get("NodeResources") or {}
    devices = [{k: d.get(k) for k in ("Vendor", "Type", "Name", "Attributes")}
               for d in resources.get("Devices") or []]
    material = {
        "Datacenter": node.get("Datacenter"), "NodeClass": node.get("NodeClass"),
        "NodePool": node.get("NodePool"), "Devices": devices,
        "Attributes": {k: v for k, v in (node.get("Attributes") or {}).items()
                       if not k.startswith("unique.")},
        "Meta": {k: v for k, v in (node.get("Meta") or {}).items()
                 if not k.startswith("unique.")},
    }
    digest = hashlib.sha1(json.dumps(material, sort_keys=True).encode(),
                          usedforsecurity=False).hexdigest()
    return f"v1:{int(digest[:15], 16)}"


def constraint_string(constraint: Json) -> str:
    return f"{constraint.get('LTarget', '')} {constraint.get('Operand', '')} " \
           f"{constraint.get('RTarget', '')}"


def device_request_id(name: str) -> tuple[str, str, str]:
    """RequestedDevice.ID(): "gpu", "nvidia/gpu" or "nvidia/gpu/<model>" -> (vendor, type, name)."""
    parts = name.split("/", 2)
    if len(parts) == 1:
        return "", parts[0], ""
    if len(parts) == 2:
        return parts[0], parts[1], ""
    return parts[0], parts[1], parts[2]


def device_matches(device: Json, request: Json) -> bool:
    """nodeDeviceMatches: vendor/type/name match and every device constraint holds."""
    vendor, dev_type, name = device_request_id(request["Name"])
    if (name and name != device["Name"]) or (vendor and vendor != device["Vendor"]) or (
            dev_type and dev_type != device["Type"]):
        return False
    for constraint in request.get("Constraints") or []:
        left = resolve_device_target(constraint.get("LTarget") or "", device)
        right = resolve_device_target(constraint.get("RTarget") or "", device)
        if not check_device_constraint(constraint.get("Operand") or "=", left, right):
            return False
    return True


@dataclass
class GroupAsk:
    """What one task group asks of a node, gathered once per evaluation."""

    job: Json
    group: Json
    job_constraints: list[Json]
    group_constraints: list[Json]
    drivers: set[str]
    devices: list[tuple[str, Json]]
    distinct_job: bool
    distinct_group: bool
    network_mode: str | None
    host_volumes: list[str]
    job_escaped: bool
    group_escaped: bool

    @classmethod
    def build(cls, job: Json, group: Json) -> GroupAsk:
        group_constraints = list(group.get("Constraints") or [])
        drivers: set[str] = set()
        devices: list[tuple[str, Json]] = []
        for task in group.get("Tasks") or []:
            group_constraints.extend(task.get("Constraints") or [])
            if task.get("Driver"):
                drivers.add(task["Driver"])
            for request in (task.get("Resources") or {}).get("Devices") or []:
                devices.append((task["Name"], request))
        job_constraints = list(job.get("Constraints") or [])
        networks = group.get("Networks") or []
        volumes = [v.get("Source") or "" for v in (group.get("Volumes") or {}).values()
                   if v.get("Type") == "host"]
        return cls(
            job=job, group=group, job_constraints=job_constraints,
            group_constraints=group_constraints, drivers=drivers, devices=devices,
            distinct_job=_distinct(job_constraints), distinct_group=_distinct(group_constraints),
            network_mode=(networks[0].get("Mode") or "host") if networks else None,
            host_volumes=volumes,
            job_escaped=any(_escapes(c) for c in job_constraints),
            group_escaped=any(_escapes(c) for c in group_constraints))


@dataclass
class Feasibility:
    """Per-evaluation checker with Nomad's class-eligibility cache."""

    job_classes: dict[str, bool] = field(default_factory=dict)
    group_classes: dict[tuple[str, str], bool] = field(default_factory=dict)
    escaped: bool = False

    def check(self, ask: GroupAsk, node: Json, metric: Json) -> bool:
        node_class = node["ComputedClass"]
        self.escaped = self.escaped or ask.job_escaped or ask.group_escaped
        known = None if ask.job_escaped else self.job_classes.get(node_class)
        if known is False:
            filter_node(metric, node, "computed class ineligible")
            return False
        if known is None:
            reason = self._job_reason(ask, node)
            if not ask.job_escaped:
                self.job_classes[node_class] = reason is None
            if reason is not None:
                filter_node(metric, node, reason)
                return False
        group_key = (ask.group["Name"], node_class)
        known = None if ask.group_escaped else self.group_classes.get(group_key)
        if known is False:
            filter_node(metric, node, "computed class ineligible")
            return False
        if known is None:
            reason = self._group_reason(ask, node)
            if not ask.group_escaped:
                self.group_classes[group_key] = reason is None
            if reason is not None:
                filter_node(metric, node, reason)
                return False
        if ask.host_volumes:
            available = node.get("HostVolumes") or {}
            if any(v not in available for v in ask.host_volumes):
                filter_node(metric, node, "missing compatible host volumes")
                return False
        return True

    def class_eligibility(self) -> dict[str, bool] | None:
        if self.escaped:
            return None
        merged = dict(self.job_classes)
        for (_, node_class), ok in self.group_classes.items():
            merged[node_class] = merged.get(node_class, True) and ok
        return merged

    @staticmethod
    def _job_reason(ask: GroupAsk, node: Json) -> str | None:
        for constraint in ask.job_constraints:
            if not check_node_constraint(constraint, node):
                return constraint_string(constraint)
        return None

    @staticmethod
    def _group_reason(ask: GroupAsk, node: Json) -> str | None:
        if not _has_drivers(node, ask.drivers):
            return "missing drivers"
        for constraint in ask.group_constraints:
            if not check_node_constraint(constraint, node):
                return constraint_string(constraint)
        if ask.devices and not _has_devices(node, [r for _, r in ask.devices]):
            return "missing devices"
        if ask.network_mode is not None and ask.network_mode != "none":
            networks = (node.get("NodeResources") or {}).get("Networks") or []
            if not any((n.get("Mode") or "host") == ask.network_mode for n in networks):
                return "missing network"
        return None


def _has_drivers(node: Json, drivers: set[str]) -> bool:
    for driver in drivers:
        info = (node.get("Drivers") or {}).get(driver)
        if info is not None:
            if not (info.get("Detected") and info.get("Healthy")):
                return False
            continue
        value = (node.get("Attributes") or {}).get(f"driver.{driver}")
        if value not in ("1", "true", "True", "t", "T", "TRUE"):
            return False
    return True


def _has_devices(node: Json, requests: list[Json]) -> bool:
    """DeviceChecker.hasDevices: healthy instances suffice, current usage is ignored."""
    node_devices = (node.get("NodeResources") or {}).get("Devices") or []
    available = {}
    for index, device in enumerate(node_devices):
        healthy = sum(1 for i in device.get("Instances") or [] if i.get("Healthy"))
        if healthy:
            available[index] = healthy
    if not available:
        return False
    for request in requests:
        wanted = request.get("Count") or 1
        for index in list(available):
            if available[index] == 0 or not device_matches(node_devices[index], request):
                continue
            take = min(wanted, available[index])
            available[index] -= take
            wanted -= take
            if wanted == 0:
                break
        if wanted:
            return False
    return True


def _distinct(constraints: list[Json]) -> bool:
    for constraint in constraints:
        if constraint.get("Operand") == "distinct_hosts":
            value = constraint.get("RTarget") or ""
            return value == "" or value.lower() not in ("false", "0", "f")
    return False


def _escapes(constraint: Json) -> bool:
    targets = (constraint.get("LTarget") or "", constraint.get("RTarget") or "")
    return any(escapes_class(t) or t.startswith("${unique.") for t in targets)


def filter_node(metric: Json, node: Json, reason: str) -> None:
    metric["NodesFiltered"] += 1
    if node.get("NodeClass"):
        classes = metric["ClassFiltered"] = metric["ClassFiltered"] or {}
        classes[node["NodeClass"]] = classes.get(node["NodeClass"], 0) + 1
    filtered = metric["ConstraintFiltered"] = metric["ConstraintFiltered"] or {}
    filtered[reason] = filtered.get(reason, 0) + 1


def exhaust(metric: Json, node: Json, dimension: str) -> None:
    metric["NodesExhausted"] += 1
    if node.get("NodeClass"):
        classes = metric["ClassExhausted"] = metric["ClassExhausted"] or {}
        classes[node["NodeClass"]] = classes.get(node["NodeClass"], 0) + 1
    dims = metric["DimensionExhausted"] = metric["DimensionExhausted"] or {}
    dims[dimension] = dims.get(dimension, 0) + 1
