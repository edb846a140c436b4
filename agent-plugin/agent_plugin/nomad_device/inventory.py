"""The node's devices as Nomad device groups, kept across detections so that a device that
stops answering turns unhealthy instead of vanishing.

A device Nomad has placed allocations on must not disappear from the fingerprint: Nomad
would then hold allocations on a device it no longer knows. So a device seen once stays,
marked unhealthy with the reason (its vendor's detector failed, or it is no longer
listed), until it is seen again. Groups are (vendor, model name) as Nomad's own NVIDIA
plugin groups them; the ``memory`` attribute is the smallest of the group's devices, so a
job's memory constraint holds for whichever device of the group it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from agent_plugin.models import DetectionReport, GpuDevice

DEVICE_TYPE = "gpu"  # every vendor's accelerators, NPUs and DCUs too, are "<vendor>/gpu"


@dataclass(frozen=True, slots=True)
class Attribute:
    int_val: int | None = None
    string_val: str | None = None
    unit: str = ""


@dataclass(frozen=True, slots=True)
class Group:
    vendor: str
    name: str
    devices: tuple[GpuDevice, ...]
    attributes: tuple[tuple[str, Attribute], ...]
    device_type: str = DEVICE_TYPE


class Inventory:
    def __init__(self) -> None:
        self._devices: dict[str, GpuDevice] = {}  # by Nomad device ID, in first-seen order

    def update(self, report: DetectionReport) -> None:
        seen = {device_id(d): d for d in report.devices}
        for known_id, known in list(self._devices.items()):
            if known_id not in seen:
                self._devices[known_id] = _lost(known, report.skipped.get(known.vendor))
        self._devices.update(seen)

    def device(self, nomad_id: str) -> GpuDevice | None:
        return self._devices.get(nomad_id)

    def devices(self) -> list[GpuDevice]:
        return list(self._devices.values())

    def groups(self) -> tuple[Group, ...]:
        by_key: dict[tuple[str, str], list[GpuDevice]] = {}
        for device in self._devices.values():
            by_key.setdefault((device.vendor, device.name), []).append(device)
        return tuple(
            Group(vendor=vendor, name=name,
                  devices=tuple(sorted(members, key=lambda d: (d.index, d.uuid))),
                  attributes=_attributes(members))
            for (vendor, name), members in sorted(by_key.items()))


def device_id(device: GpuDevice) -> str:
    """Stable across restarts: the detectors' uuid is the tool's UUID or serial, else the
    PCI bus id, and only as a last resort "<vendor>-<index>"."""
    return device.uuid


def fingerprint_key(groups: Iterable[Group]) -> tuple[object, ...]:
    """What Nomad is told in a fingerprint, without the readings that change every time
    (memory used, utilisation, temperature), so a new message is sent only on a change."""
    return tuple(
        (g.vendor, g.name, g.attributes,
         tuple((device_id(d), d.healthy, d.health_reason, d.pci_bus_id) for d in g.devices))
        for g in groups)


def _lost(device: GpuDevice, vendor_problem: str | None) -> GpuDevice:
    reason = (f"the vendor tool failed: {vendor_problem}" if vendor_problem
              else f"not detected: the {device.vendor} tool no longer lists it")
    return dataclasses.replace(device, healthy=False, health_reason=reason)


def _attributes(members: list[GpuDevice]) -> tuple[tuple[str, Attribute], ...]:
    attrs: dict[str, Attribute] = {}
    memories = [d.memory_total_mb for d in members if d.memory_total_mb > 0]
    if memories:
        attrs["memory"] = Attribute(int_val=min(memories), unit="MiB")
    for key, values in (("driver_version", [d.driver_version for d in members]),
                        ("compute_capability", [d.compute_capability for d in members])):
        present = [v for v in values if v]
        if present:
            attrs[key] = Attribute(string_val=present[0])
    return tuple(sorted(attrs.items()))
