"""nvidia-smi's query interface (``--query-gpu=... --format=csv,noheader``), which several
vendors copy: NVIDIA's own fallback, Iluvatar's ``ixsmi`` and Biren's ``brsmi``.

Each row is one device in the order of the requested fields; values may carry units
("16384 MiB", "0 %") or placeholders ("[N/A]", "[Not Supported]").
"""

from __future__ import annotations

import csv

from agent_plugin.detectors.base import make_device, mib, number, text
from agent_plugin.errors import UnparsableOutput
from agent_plugin.models import GpuDevice

BASE_FIELDS: tuple[str, ...] = (
    "index", "uuid", "name", "memory.total", "memory.used", "memory.free", "utilization.gpu",
    "temperature.gpu", "power.draw", "driver_version", "pci.bus_id",
)


def query_args(fields: tuple[str, ...], *, nounits: bool) -> tuple[str, ...]:
    fmt = "csv,noheader,nounits" if nounits else "csv,noheader"
    return (f"--query-gpu={','.join(fields)}", f"--format={fmt}")


def parse_query_csv(output: str, *, vendor: str, tool: str,
                    fields: tuple[str, ...] = BASE_FIELDS) -> list[GpuDevice]:
    """Devices from the tool's CSV rows; any row of the wrong width, or without an index,
    makes the whole output unreadable (a half-read table would misreport the node)."""
    devices: list[GpuDevice] = []
    for lineno, row in enumerate(csv.reader(output.splitlines()), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if len(row) != len(fields):
            raise UnparsableOutput(
                f"{tool} line {lineno} has {len(row)} columns, expected {len(fields)}")
        cell = dict(zip(fields, (c.strip() for c in row), strict=True))
        index = number(cell["index"])
        if index is None:
            raise UnparsableOutput(f"{tool} line {lineno} has no device index")
        devices.append(make_device(
            vendor=vendor, index=int(index), uuid=text(cell.get("uuid")),
            name=text(cell.get("name")), total_mb=mib(cell.get("memory.total")),
            used_mb=mib(cell.get("memory.used")), free_mb=mib(cell.get("memory.free")),
            utilization=number(cell.get("utilization.gpu")),
            temperature=number(cell.get("temperature.gpu")),
            power=number(cell.get("power.draw")), driver=text(cell.get("driver_version")),
            pci_bus_id=text(cell.get("pci.bus_id")),
            compute_capability=text(cell.get("compute_cap")),
        ))
    if not devices and output.strip():
        raise UnparsableOutput(f"{tool} printed no device rows")
    return devices
