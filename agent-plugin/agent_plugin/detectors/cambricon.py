"""Cambricon MLUs from ``cnmon info -j``.

cnmon writes its JSON report to ``cnmon_info.json`` in the working directory (stdout only
carries the human table), so it runs in a private temporary folder. The report is
``{"CnmonInfo": [card, ...]}`` with per card "CardNum", "ProductName", "UUID",
"PCI" -> "DomainID"/"Bus"/"Device"/"Function", "PhysicalMemUsage" -> "Total"/"Used" (MiB),
"Temperature" -> "Chip", "Utilization" -> "MLUAverage" (field names as read by
gpustack-runtime's Cambricon detector). "Power" -> "Usage" and "DriverVersion" are read
when present (unverified: not in the samples we had).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent_plugin.detectors.base import DetectContext, make_device, mib, number, text
from agent_plugin.errors import UnparsableOutput
from agent_plugin.models import GpuDevice

REPORT_FILE = "cnmon_info.json"


class CambriconDetector:
    vendor = "cambricon"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        workdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="heteroflow-cnmon-")
        try:
            out = await ctx.tools.run("cnmon", "info", "-j", cwd=Path(workdir))
            report = await asyncio.to_thread(_read_report, Path(workdir) / REPORT_FILE)
        finally:
            await asyncio.to_thread(_remove, Path(workdir))
        # some builds print the JSON instead of writing the file
        return parse_cnmon_json(report if report is not None else out.stdout)


def parse_cnmon_json(output: str) -> list[GpuDevice]:
    try:
        document = json.loads(output)
    except json.JSONDecodeError as exc:
        raise UnparsableOutput(f"cnmon did not produce a JSON report: {exc.msg}") from None
    cards = document.get("CnmonInfo") if isinstance(document, dict) else None
    if not isinstance(cards, list):
        raise UnparsableOutput("cnmon's report has no CnmonInfo list")
    driver = text(document.get("DriverVersion"))
    devices = []
    for position, card in enumerate(cards):
        if not isinstance(card, dict):
            raise UnparsableOutput("cnmon's report has a card that is not an object")
        memory = _obj(card, "PhysicalMemUsage")
        index = number(card.get("CardNum"))
        devices.append(make_device(
            vendor="cambricon", index=int(index) if index is not None else position,
            uuid=text(card.get("UUID")), name=text(card.get("ProductName")),
            total_mb=mib(memory.get("Total")), used_mb=mib(memory.get("Used")),
            utilization=number(_obj(card, "Utilization").get("MLUAverage")),
            temperature=number(_obj(card, "Temperature").get("Chip")),
            power=number(_obj(card, "Power").get("Usage")),
            driver=text(card.get("DriverVersion")) or driver,
            pci_bus_id=_bus_id(_obj(card, "PCI")),
        ))
    return devices


def _bus_id(pci: Mapping[str, Any]) -> str | None:
    parts = [text(pci.get(k)) for k in ("DomainID", "Bus", "Device", "Function")]
    if not all(parts):
        return None
    try:
        domain, bus, device, function = (int(p, 16) for p in parts if p)
    except ValueError:
        return None
    return f"{domain:04x}:{bus:02x}:{device:02x}.{function}"


def _obj(card: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = card.get(key)
    return value if isinstance(value, dict) else {}


def _read_report(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
