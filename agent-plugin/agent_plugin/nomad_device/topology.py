"""How a device group's GPUs reach each other, from the PCI tree in sysfs, as the group
attribute ``p2p`` that tensor-parallel jobs prefer (docs/gpu-sharing.md, "Topology").

Nomad's constraints and affinities read group attributes, not one instance's locality, so
the attribute describes the whole group: ``pcie-switch`` when all its GPUs sit below one
PCIe switch (peer-to-peer without crossing the CPU), ``host-bridge`` when they share only a
root complex, ``none`` when they span root complexes (another socket). A group whose tree
cannot be read gets no attribute. NVLink is not seen here: it needs NVML's link queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent_plugin.models import GpuDevice
from agent_plugin.nomad_device.reservation import pci_bus_id

# ancestors shared by GPUs below one switch: the root complex, its root port, the switch's
# upstream port
_SWITCH_DEPTH = 3


def pci_ancestors(device: GpuDevice, sysfs_root: Path) -> tuple[str, ...] | None:
    """The device's PCI ancestors (root complex first), from its sysfs link."""
    if not device.pci_bus_id:
        return None
    link = sysfs_root / "bus" / "pci" / "devices" / pci_bus_id(device.pci_bus_id)
    try:
        parts = link.resolve(strict=True).parts
    except OSError:
        return None
    if "devices" not in parts:
        return None
    chain = parts[parts.index("devices") + 1:]
    return tuple(chain[:-1]) if chain else None


def p2p(ancestors: Sequence[tuple[str, ...] | None]) -> str | None:
    if len(ancestors) < 2 or any(a is None for a in ancestors):
        return None
    known = [a for a in ancestors if a is not None]
    common = 0
    for column in zip(*known, strict=False):
        if len(set(column)) != 1:
            break
        common += 1
    if common >= _SWITCH_DEPTH:
        return "pcie-switch"
    return "host-bridge" if common >= 1 else "none"
