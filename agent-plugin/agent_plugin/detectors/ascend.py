"""Huawei Ascend NPUs from ``npu-smi info`` (the summary table) and ``npu-smi info -m``
(which chip has which logical id: the ids ``ASCEND_RT_VISIBLE_DEVICES`` takes).

The table comes in pairs of rows per chip, between ``+===+`` or ``+---+`` rules::

    | NPU   Name         | Health  | Power(W)  Temp(C)   Hugepages-Usage(page) |
    | Chip  [Device]     | Bus-Id  | AICore(%) Memory-Usage(MB)  [HBM-Usage(MB)] |
    | 0     910B1        | OK      | 271.1     41        0    / 0              |
    | 0                  | 0000:C1:00.0 | 55   0 / 0     65099/ 65536          |

The first row names the NPU (card); the second, recognised by its PCI bus id, is one chip.
910 cards have one chip and report memory under HBM-Usage (the last "used / total" pair);
310P cards have two chips, each listed with its own pair of rows and its logical "Device"
id. Rows between a chip row and the next card (per-chip alarm rows) are ignored, as is the
process table after the devices. The table has no UUID, so a chip is identified by its bus
id and chip number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent_plugin.detectors.base import DetectContext, make_device, number, text
from agent_plugin.errors import DetectError, UnparsableOutput
from agent_plugin.models import GpuDevice

_BUS = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
_PAIR = re.compile(r"(\d+)\s*/\s*(\d+)")
_VERSION = re.compile(r"Version:\s*(\S+)")


@dataclass(frozen=True, slots=True)
class _Card:
    npu: int
    name: str
    health: str
    power: float | None
    temperature: float | None


class AscendDetector:
    vendor = "ascend"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        table = await ctx.tools.run("npu-smi", "info")
        try:
            mapping = parse_logical_ids((await ctx.tools.run("npu-smi", "info", "-m")).stdout)
        except DetectError:
            mapping = {}  # older drivers lack -m; ids then follow table order
        return parse_npu_smi(table.stdout, mapping)


def parse_logical_ids(output: str) -> dict[tuple[int, int], int]:
    """``npu-smi info -m``: "NPU ID  Chip ID  Chip Logic ID  Chip Name" rows; MCU chips have
    "-" as their logical id and are not devices."""
    ids = {}
    for line in output.splitlines():
        cols = line.split()
        if len(cols) >= 3 and all(c.isdigit() for c in cols[:3]):
            ids[(int(cols[0]), int(cols[1]))] = int(cols[2])
    return ids


def parse_npu_smi(output: str, logical: dict[tuple[int, int], int]) -> list[GpuDevice]:
    version = _VERSION.search(output)
    driver = version.group(1) if version else None
    has_device_column = False
    card: _Card | None = None
    devices: list[GpuDevice] = []
    for line in output.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if any("Process id" in c for c in cells):
            break  # the process table follows the devices
        if len(cells) < 3:
            continue
        first = cells[0].split()
        if first[:1] == ["Chip"]:
            has_device_column = "Device" in first
            continue
        if not first or not first[0].isdigit():
            continue
        if _BUS.match(cells[1]):
            if card is None:
                raise UnparsableOutput(f"npu-smi lists chip row {line.strip()!r} before its NPU")
            devices.append(_chip(card, first, cells, has_device_column, logical, driver,
                                 position=len(devices)))
        else:
            values = cells[2].split()
            card = _Card(npu=int(first[0]), name=" ".join(first[1:]), health=cells[1],
                         power=number(values[0]) if values else None,
                         temperature=number(values[1]) if len(values) > 1 else None)
    if not devices and output.strip():
        raise UnparsableOutput("npu-smi printed no chip rows")
    return devices


def _chip(card: _Card, first: list[str], cells: list[str], has_device_column: bool,
          logical: dict[tuple[int, int], int], driver: str | None,
          position: int) -> GpuDevice:
    chip = int(first[0])
    if has_device_column and len(first) > 1 and first[1].isdigit():
        index = int(first[1])
    else:
        index = logical.get((card.npu, chip), position)
    pairs = _PAIR.findall(cells[2])
    used, total = (int(pairs[-1][0]), int(pairs[-1][1])) if pairs else (None, None)
    bus = cells[1]
    name = card.name if card.name.startswith("Ascend") else f"Ascend {card.name}"
    health = text(card.health)
    return make_device(
        vendor="ascend", index=index, uuid=f"{bus}/{chip}", name=name,
        total_mb=total, used_mb=used, utilization=number(cells[2].split()[0]),
        temperature=card.temperature, power=card.power, driver=driver, pci_bus_id=bus,
        health_problem=None if health == "OK" else f"npu-smi reports health {health!r}",
    )
