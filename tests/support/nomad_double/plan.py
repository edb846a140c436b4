"""A scheduler plan being built: stops, placements and in-place updates, plus their effect on
node capacity, so later placements in the same evaluation see earlier ones (Nomad's
"proposed allocations")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .objects import alloc_terminal

Json = dict[str, Any]


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
    preempted: dict[str, str] = field(default_factory=dict)  # victim id -> preempting alloc

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
