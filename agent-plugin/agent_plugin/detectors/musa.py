"""Moore Threads GPUs from ``mthreads-gmi --query --json``.

The JSON mirrors nvidia-smi's ``-q`` report: a top-level "Driver Version" and a "GPU" list
whose entries have "Index", "Product Name", "GPU UUID", "PCI" -> "Bus ID",
"FB Memory Usage" -> "Total"/"Used"/"Free" ("81920MiB"), "Utilization" -> "Gpu" ("0%"),
"Temperature" -> "GPU Current Temp" ("27C") and "Power Readings" -> "Power Draw" ("96.66W").
Some releases put a trailing space in keys ("Power Draw "), so keys are compared stripped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent_plugin.detectors.base import DetectContext, make_device, mib, number, text
from agent_plugin.errors import UnparsableOutput
from agent_plugin.models import GpuDevice


class MusaDetector:
    vendor = "musa"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        out = await ctx.tools.run("mthreads-gmi", "--query", "--json")
        return parse_mthreads_gmi(out.stdout)


def parse_mthreads_gmi(output: str) -> list[GpuDevice]:
    try:
        document = json.loads(output)
    except json.JSONDecodeError as exc:
        raise UnparsableOutput(f"mthreads-gmi did not print JSON: {exc.msg}") from None
    if not isinstance(document, dict):
        raise UnparsableOutput("mthreads-gmi printed JSON that is not an object")
    root = _stripped(document)
    gpus = root.get("GPU", [])
    if isinstance(gpus, dict):  # a single GPU is printed as an object
        gpus = [gpus]
    if not isinstance(gpus, list):
        raise UnparsableOutput("mthreads-gmi printed no GPU list")
    driver = text(root.get("Driver Version"))
    devices = []
    for position, raw in enumerate(gpus):
        if not isinstance(raw, dict):
            raise UnparsableOutput("mthreads-gmi printed a GPU entry that is not an object")
        gpu = _stripped(raw)
        memory = _stripped(gpu.get("FB Memory Usage"))
        index = number(gpu.get("Index"))
        devices.append(make_device(
            vendor="musa", index=int(index) if index is not None else position,
            uuid=text(gpu.get("GPU UUID")) or text(gpu.get("Serial Number")),
            name=text(gpu.get("Product Name")),
            total_mb=mib(memory.get("Total")), used_mb=mib(memory.get("Used")),
            free_mb=mib(memory.get("Free")),
            utilization=number(_stripped(gpu.get("Utilization")).get("Gpu")),
            temperature=number(_stripped(gpu.get("Temperature")).get("GPU Current Temp")),
            power=number(_stripped(gpu.get("Power Readings")).get("Power Draw")),
            driver=driver, pci_bus_id=text(_stripped(gpu.get("PCI")).get("Bus ID")),
        ))
    return devices


def _stripped(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        return {}
    return {str(k).strip(): v for k, v in value.items()}
