"""Enflame GCUs from ``efsmi -q``: one "DEV ID n" block per device of indented
"Key : Value" lines grouped under section titles::

    DEV ID 0
        Driver Info
            Ver                     : 1.2.4.12
        Device Info
            Dev Name                : S60
            Dev UUID                : TR1V57100501
            Health                  : True
        PCIe Info
            Domain : 0000 / Bus : b1 / Dev : 00 / Func : 0   (one per line)
        Power Info
            Cur Power               : 99 W
        Temperature Info
            GCU Temp                : 34 C
        Device Mem Info
            Mem Size                : 42976 MiB     (newer drivers: Total Size)
            Mem Usage               : 1129 MiB      (newer drivers: Used Size)
        Device Usage Info
            GCU Usage               : 0.0 %
"""

from __future__ import annotations

import re

from agent_plugin.detectors.base import DetectContext, make_device, mib, number, text
from agent_plugin.errors import UnparsableOutput
from agent_plugin.models import GpuDevice

_DEV = re.compile(r"^\s*DEV ID\s+(\d+)\s*$")
_PAIR = re.compile(r"^\s*([^:]+?)\s*:\s*(.*?)\s*$")


class EnflameDetector:
    vendor = "enflame"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        out = await ctx.tools.run("efsmi", "-q")
        return parse_efsmi(out.stdout)


def parse_efsmi(output: str) -> list[GpuDevice]:
    blocks: list[tuple[int, dict[str, str]]] = []
    for line in output.splitlines():
        if m := _DEV.match(line):
            blocks.append((int(m.group(1)), {}))
        elif blocks and (m := _PAIR.match(line)):
            blocks[-1][1].setdefault(m.group(1), m.group(2))
    if not blocks and output.strip() and "Enflame" not in output:
        raise UnparsableOutput("efsmi printed no DEV ID blocks")
    return [_device(index, fields) for index, fields in blocks]


def _device(index: int, f: dict[str, str]) -> GpuDevice:
    total = mib(f.get("Total Size") or f.get("Mem Size"))
    used = mib(f.get("Used Size") or f.get("Mem Usage"))
    if total is None:
        raise UnparsableOutput(f"efsmi reports no memory size for DEV ID {index}")
    health = (text(f.get("Health")) or "True").lower()
    return make_device(
        vendor="enflame", index=index,
        uuid=text(f.get("Dev UUID")) or text(f.get("Dev SN")),
        name=text(f.get("Dev Name")), total_mb=total, used_mb=used,
        utilization=number(f.get("GCU Usage")), temperature=number(f.get("GCU Temp")),
        power=number(f.get("Cur Power")), driver=text(f.get("Ver")),
        pci_bus_id=_bus_id(f),
        health_problem=None if health in ("true", "ok", "healthy")
        else f"efsmi reports health {f.get('Health')!r}",
    )


def _bus_id(f: dict[str, str]) -> str | None:
    parts = [f.get(k) for k in ("Domain", "Bus", "Dev", "Func")]
    if not all(parts):
        return None
    domain, bus, dev, func = (p or "" for p in parts)
    return f"{domain}:{bus}:{dev}.{func}"
