"""Devices from a JSON inventory file, for development machines and tests without a vendor
tool (like GPUStack's custom detector or Nomad's example device plugin).

The file is a list of devices, or ``{"devices": [...]}``. Each device needs ``vendor``,
``name`` and ``memory_total_mb``; the other ``GpuDevice`` fields are optional (``index``
defaults to the device's position among its vendor's, used memory to 0, health to true).
The vendor is taken as given, so an inventory may describe hardware no detector knows.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent_plugin._json import (
    ShapeError,
    opt_float,
    opt_int,
    opt_str,
    req_int,
    req_object,
    req_str,
)
from agent_plugin.detectors.base import DetectContext, make_device
from agent_plugin.errors import DetectError, UnparsableOutput
from agent_plugin.models import GpuDevice


class StaticDetector:
    vendor = "static"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        if ctx.inventory is None:
            raise DetectError("no inventory file is configured (HETEROFLOW_GPU_INVENTORY)")
        return await asyncio.to_thread(read_inventory, ctx.inventory)


def read_inventory(path: Path) -> list[GpuDevice]:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise DetectError(f"inventory {path} does not exist") from None
    except OSError as exc:
        raise DetectError(f"inventory {path} cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UnparsableOutput(f"inventory {path} is not JSON: {exc.msg} at line {exc.lineno}")\
            from None
    entries = document.get("devices") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise UnparsableOutput(f"inventory {path} must be a list of devices")
    seen: Counter[str] = Counter()
    devices = []
    for position, entry in enumerate(entries):
        try:
            devices.append(_device(req_object(entry, "a device"), seen))
        except ShapeError as exc:
            raise UnparsableOutput(f"inventory {path}, device {position}: {exc}") from None
    return devices


def _device(entry: Mapping[str, Any], seen: Counter[str]) -> GpuDevice:
    vendor = req_str(entry, "vendor")
    index = opt_int(entry, "index")
    index = seen[vendor] if index is None else index
    seen[vendor] += 1
    healthy = entry.get("healthy", True)
    reason = opt_str(entry, "health_reason") or "marked unhealthy in the inventory"
    return make_device(
        vendor=vendor, index=index, uuid=opt_str(entry, "uuid") or f"static-{vendor}-{index}",
        name=req_str(entry, "name"), total_mb=req_int(entry, "memory_total_mb"),
        used_mb=opt_int(entry, "memory_used_mb") or 0, free_mb=opt_int(entry, "memory_free_mb"),
        utilization=opt_float(entry, "utilization_percent"),
        temperature=opt_float(entry, "temperature_c"), power=opt_float(entry, "power_w"),
        driver=opt_str(entry, "driver_version"), pci_bus_id=opt_str(entry, "pci_bus_id"),
        compute_capability=opt_str(entry, "compute_capability"),
        health_problem=None if healthy is True else reason,
    )
