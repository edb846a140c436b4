"""The detector extension point: a small protocol, the context every detector gets, and
the helpers that turn a tool's numbers into a ``GpuDevice``.

A detector either returns the devices it found (possibly none) or raises a
``DetectError`` whose message is the reason; ``registry.detect_all`` turns that into the
report's per-vendor reason. Adding a vendor is one module plus one registry line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent_plugin.detectors.tools import ToolRunner
from agent_plugin.models import GpuDevice

_MIB = 1024 * 1024
_NOT_A_VALUE = {"", "n/a", "[n/a]", "na", "-", "--", "not supported", "[not supported]",
                "unknown", "none", "null"}
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
_UNIT_FACTORS_MIB = {"b": 1 / _MIB, "kib": 1 / 1024, "kb": 1 / 1024, "mib": 1.0, "mb": 1.0,
                     "gib": 1024.0, "gb": 1024.0}


@dataclass(frozen=True, slots=True)
class DetectContext:
    tools: ToolRunner
    sysfs_root: Path = Path("/sys")
    inventory: Path | None = None


class GpuDetector(Protocol):
    vendor: str

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]: ...


def number(text: object) -> float | None:
    """The number in a tool's cell ("70.5 W", "45C", "[N/A]" -> None)."""
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    raw = str(text).strip()
    if raw.lower() in _NOT_A_VALUE:
        return None
    match = _NUMBER.search(raw)
    return float(match.group()) if match else None


def mib(text: object, default_unit: str = "mib") -> int | None:
    """A memory amount in MiB; the unit is read from the text ("42976 MiB", "17163091968 B")
    or taken from ``default_unit`` when the text is a bare number."""
    value = number(text)
    if value is None:
        return None
    unit = default_unit
    if isinstance(text, str):
        tail = re.sub(r"[-+]?\d+(?:\.\d+)?", "", text).strip().lower()
        if tail in _UNIT_FACTORS_MIB:
            unit = tail
    return int(value * _UNIT_FACTORS_MIB[unit])


def text(value: object) -> str | None:
    """A tool's string cell, or None for its placeholders."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    raw = str(value).strip()
    return None if raw.lower() in _NOT_A_VALUE else raw


def make_device(*, vendor: str, index: int, uuid: str | None, name: str | None,
                total_mb: int | None, used_mb: int | None, free_mb: int | None = None,
                utilization: float | None = None, temperature: float | None = None,
                power: float | None = None, driver: str | None = None,
                pci_bus_id: str | None = None, health_problem: str | None = None,
                compute_capability: str | None = None) -> GpuDevice:
    """A device with the derived fields filled in: free memory from total minus used, an
    identity when the tool has no UUID, and unhealthy when the tool says so or reports no
    memory at all (such a device cannot take a model)."""
    total = total_mb or 0
    used = used_mb if used_mb is not None else (total - free_mb if free_mb is not None else 0)
    free = free_mb if free_mb is not None else max(total - used, 0)
    problem = health_problem or ("the tool reports no device memory" if total <= 0 else "")
    return GpuDevice(
        vendor=vendor, index=index,
        uuid=uuid or pci_bus_id or f"{vendor}-{index}",
        name=name or f"{vendor} device {index}",
        memory_total_mb=total, memory_used_mb=max(used, 0), memory_free_mb=max(free, 0),
        utilization_percent=utilization, temperature_c=temperature, power_w=power,
        driver_version=driver, pci_bus_id=pci_bus_id, healthy=not problem,
        health_reason=problem, compute_capability=compute_capability,
    )
