"""MetaX GPUs from ``mx-smi``'s summary table (mx-smi 2.x)::

    | MX-SMI 2.2.4                        Kernel Mode Driver Version: 2.15.9          |
    | GPU         NAME                   | Bus-id              | GPU-Util             |
    | Temp        Pwr:Usage/Cap          | Memory-Usage        | GPU-State            |
    |====================================+=====================+======================|
    | 0           MetaX C550             | 0000:0f:00.0        | 0%                   |
    | 29C         53W / 450W             | 858/65536 MiB       | Available            |

Two rows per GPU: the first (index, name, bus id, utilisation), the second (temperature,
power, memory used/total, state). The table has no UUID; the bus id identifies the GPU.
The process table that may follow is ignored.
"""

from __future__ import annotations

import itertools
import re

from agent_plugin.detectors.base import DetectContext, make_device, number, text
from agent_plugin.errors import UnparsableOutput
from agent_plugin.models import GpuDevice

_BUS = re.compile(r"^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
_MEMORY = re.compile(r"(\d+)\s*/\s*(\d+)\s*MiB", re.I)
_DRIVER = re.compile(r"Kernel Mode Driver Version:\s*(\S+)")
_BAD_STATES = ("error", "fault", "unavailable", "lost")


class MetaxDetector:
    vendor = "metax"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        out = await ctx.tools.run("mx-smi")
        return parse_mx_smi(out.stdout)


def parse_mx_smi(output: str) -> list[GpuDevice]:
    driver_match = _DRIVER.search(output)
    driver = driver_match.group(1) if driver_match else None
    rows = []
    for line in output.splitlines():
        if "Process" in line:
            break  # the process table follows the GPUs
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3:
                rows.append(cells)
    devices = []
    for first, second in itertools.pairwise(rows):
        head = first[0].split(maxsplit=1)
        if not head or not head[0].isdigit() or not _BUS.match(first[1]):
            continue
        memory = _MEMORY.search(second[1])
        if memory is None:
            raise UnparsableOutput(f"mx-smi has no memory reading for GPU {head[0]}")
        power = second[0].split(maxsplit=1)
        state = (text(second[2]) or "").lower()
        devices.append(make_device(
            vendor="metax", index=int(head[0]), uuid=first[1],
            name=head[1] if len(head) > 1 else None,
            total_mb=int(memory.group(2)), used_mb=int(memory.group(1)),
            utilization=number(first[2]), temperature=number(power[0]) if power else None,
            power=number(power[1]) if len(power) > 1 else None, driver=driver,
            pci_bus_id=first[1],
            health_problem=(f"mx-smi reports state {second[2]!r}"
                            if any(b in state for b in _BAD_STATES) else None),
        ))
    if not devices and "MX-SMI" not in output:
        raise UnparsableOutput("mx-smi printed no GPU table")
    return devices
