"""Kunlunxin XPUs from ``xpu_smi -m`` (machine-readable: one line per device, positional
columns, the model name quoted)::

    00000000:03:00.0 0 0 02K15K624CV00304 36 0 0 0 86 1450 ... 1450 2 96 90440 98304 0
        1.0:2.6:1.39.1.7 "P800 OAM" 0 0 ...     (one line, wrapped here)

Columns (0-based): 0 PCI bus id, 2 device id (the XPU_VISIBLE_DEVICES id, /dev/xpuN),
3 serial number, 4 temperature C, 8 power, 15/16 L3 cache (not device memory), 17 memory
used MiB, 18 memory total MiB, 19 utilisation %, 20 firmware version, 21 model name.
The layout is read from captured P800 output. Column 8 is watts on P800; K200 boards are
reported to give milliwatts there, so implausibly large values are read as mW.
The tool is ``xpu_smi``; ``xpu-smi`` is also tried, but that name is shared with Intel's
tool, whose output does not have this shape and is rejected as unreadable.
"""

from __future__ import annotations

import re

from agent_plugin.detectors.base import DetectContext, make_device, number, text
from agent_plugin.errors import UnparsableOutput
from agent_plugin.models import GpuDevice

_TOKEN = re.compile(r'"[^"]*"|\S+')
_BUS = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
_MAX_PLAUSIBLE_WATTS = 2000.0


class KunlunxinDetector:
    vendor = "kunlunxin"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        out = await ctx.tools.run(("xpu_smi", "xpu-smi"), "-m")
        return parse_xpu_smi(out.stdout)


def parse_xpu_smi(output: str) -> list[GpuDevice]:
    devices = []
    for line in output.splitlines():
        cols = _TOKEN.findall(line)
        if len(cols) < 22 or not _BUS.match(cols[0]) or not cols[2].isdigit():
            continue
        power = number(cols[8])
        if power is not None and power > _MAX_PLAUSIBLE_WATTS:
            power /= 1000.0
        devices.append(make_device(
            vendor="kunlunxin", index=int(cols[2]), uuid=text(cols[3]),
            name=f"Kunlunxin {cols[21].strip(chr(34))}",
            total_mb=int(number(cols[18]) or 0), used_mb=int(number(cols[17]) or 0),
            utilization=number(cols[19]), temperature=number(cols[4]), power=power,
            pci_bus_id=cols[0],
        ))
    if not devices and output.strip():
        raise UnparsableOutput("xpu_smi -m printed no device lines")
    return devices
