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
from pathlib import Path

from agent_plugin.models import DetectionReport, GpuDevice
from agent_plugin.nomad_device.topology import p2p, pci_ancestors
from heteroflow_contracts.gpu_sharing import (
    SHARE_TYPE,
    isolation_for,
    share_budget_mib,
    share_id,
)

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
    def __init__(self, sysfs_root: Path | None = None) -> None:
        self._sysfs_root = sysfs_root  # where the PCI tree is read for "p2p"; None: not
        self._devices: dict[str, GpuDevice] = {}  # by Nomad device ID, in first-seen order
        # device ID -> (K, one share's budget in MiB), fixed when the GPU became shared
        self._budgets: dict[str, tuple[int, int]] = {}

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

    def set_layout(self, shares: dict[str, int]) -> None:
        """Which GPUs are offered as K shares (the rest whole). A share's budget is the
        GPU's free memory measured now, when it becomes shared or its K changes, and then
        stays: readings that change with the load must not change what Nomad was told
        (docs/gpu-sharing.md, "Budgets")."""
        for known in list(self._budgets):
            if known not in shares:
                del self._budgets[known]
        for nomad_id, k in shares.items():
            device = self._devices.get(nomad_id)
            if device is None or self._budgets.get(nomad_id, (0, 0))[0] == k:
                continue
            self._budgets[nomad_id] = (k, share_budget_mib(device.memory_free_mb, k))

    def share_devices(self) -> dict[str, GpuDevice]:
        """Each share's device ID -> the GPU it is a share of (what Reserve resolves)."""
        return {share_id(gpu, i): self._devices[gpu]
                for gpu, (k, _) in self._budgets.items() for i in range(k)}

    def shares_of(self, nomad_id: str) -> tuple[int, int] | None:
        return self._budgets.get(nomad_id)

    def groups(self) -> tuple[Group, ...]:
        by_key: dict[tuple[str, str, str], list[GpuDevice]] = {}
        for device in self._devices.values():
            budget = self._budgets.get(device_id(device))
            if budget is None:
                by_key.setdefault((device.vendor, device.name, DEVICE_TYPE), []).append(device)
                continue
            # A shared GPU is offered only as its shares, never also whole: one fingerprint
            # lists each GPU in exactly one group (the invariant of docs/gpu-sharing.md).
            k, mib = budget
            by_key.setdefault((device.vendor, device.name, SHARE_TYPE), []).extend(
                dataclasses.replace(device, uuid=share_id(device.uuid, i), memory_total_mb=mib)
                for i in range(k))
        return tuple(
            Group(vendor=vendor, name=name,
                  devices=tuple(sorted(members, key=lambda d: (d.index, d.uuid))),
                  attributes=_attributes(members, shared=kind == SHARE_TYPE,
                                         p2p=self._p2p(members, kind)),
                  device_type=kind)
            for (vendor, name, kind), members in sorted(by_key.items()))


    def _p2p(self, members: list[GpuDevice], kind: str) -> str | None:
        if self._sysfs_root is None or kind == SHARE_TYPE:
            return None  # a share is one slice of one GPU: nothing to reach
        return p2p([pci_ancestors(d, self._sysfs_root) for d in members])


def device_id(device: GpuDevice) -> str:
    """Stable across restarts: the detectors' uuid is the tool's UUID or serial, else the
    PCI bus id, and only as a last resort "<vendor>-<index>"."""
    return device.uuid


def fingerprint_key(groups: Iterable[Group]) -> tuple[object, ...]:
    """What Nomad is told in a fingerprint, without the readings that change every time
    (memory used, utilisation, temperature), so a new message is sent only on a change."""
    return tuple(
        (g.vendor, g.device_type, g.name, g.attributes,
         tuple((device_id(d), d.healthy, d.health_reason, d.pci_bus_id) for d in g.devices))
        for g in groups)


def _lost(device: GpuDevice, vendor_problem: str | None) -> GpuDevice:
    reason = (f"the vendor tool failed: {vendor_problem}" if vendor_problem
              else f"not detected: the {device.vendor} tool no longer lists it")
    return dataclasses.replace(device, healthy=False, health_reason=reason)


def _attributes(members: list[GpuDevice], shared: bool = False,
                p2p: str | None = None) -> tuple[tuple[str, Attribute], ...]:
    attrs: dict[str, Attribute] = {}
    if p2p is not None:
        attrs["p2p"] = Attribute(string_val=p2p)
    # for shares memory_total_mb is the share's budget, so "memory" is the smallest budget
    memories = [d.memory_total_mb for d in members if d.memory_total_mb > 0]
    if memories:
        attrs["memory"] = Attribute(int_val=min(memories), unit="MiB")
    if shared:
        attrs["isolation"] = Attribute(string_val=isolation_for(members[0].vendor))
    for key, values in (("driver_version", [d.driver_version for d in members]),
                        ("compute_capability", [d.compute_capability for d in members])):
        present = [v for v in values if v]
        if present:
            attrs[key] = Attribute(string_val=present[0])
    return tuple(sorted(attrs.items()))
