"""``rocm-smi --json`` and its Hygon descendant ``hy-smi --json``: an object of
``"cardN": {label: value}`` plus an optional ``"system"`` entry.

The labels are human sentences whose wording drifts between releases and vendors
("GPU use (%)", "DCU use (%)", "HCU use (%)"; "VRAM Total Memory (B)" on AMD,
"vram Total Memory (MiB)" on Hygon), so they are matched by pattern, case-insensitively.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from agent_plugin.detectors.base import make_device, mib, number, text
from agent_plugin.errors import UnparsableOutput
from agent_plugin.models import GpuDevice

_CARD = re.compile(r"^card(\d+)$")
_TOTAL = re.compile(r"^vram total memory \((b|mib|mb)\)$", re.I)
_USED = re.compile(r"^vram total used memory \((b|mib|mb)\)$", re.I)
_USE = re.compile(r"^(gpu|dcu|hcu) use \(%\)$", re.I)
_POWER = re.compile(r"(average|current socket) graphics package power \(w\)", re.I)
# hottest sensor first: junction/core is what throttles
_TEMPS = ("junction", "core", "edge", "mem", "memory")
_NAMES = ("card series", "device name", "card model", "card sku")


def is_hygon_card(card: Mapping[str, Any]) -> bool:
    """Hygon DCUs report a "DCU/HCU use" label and their vendor is Chengdu Haiguang."""
    if any(_USE.match(k) and not k.lower().startswith("gpu") for k in card):
        return True
    vendor = str(_get(card, "card vendor") or "").lower()
    return "haiguang" in vendor or "hygon" in vendor


def parse_rocm_json(output: str, *, vendor: str, tool: str,
                    accept: Callable[[Mapping[str, Any]], bool]) -> list[GpuDevice]:
    try:
        document = json.loads(output)
    except json.JSONDecodeError as exc:
        raise UnparsableOutput(f"{tool} did not print JSON: {exc.msg} at line {exc.lineno}")\
            from None
    if not isinstance(document, dict):
        raise UnparsableOutput(f"{tool} printed JSON that is not an object of cards")
    system = document.get("system")
    driver = text(_get(system, "driver version")) if isinstance(system, dict) else None
    devices = []
    for key, card in document.items():
        match = _CARD.match(key)
        if not match or not isinstance(card, dict) or not accept(card):
            continue
        devices.append(_card(int(match.group(1)), card, vendor, driver))
    devices.sort(key=lambda d: d.index)
    return devices


def _card(index: int, card: Mapping[str, Any], vendor: str, driver: str | None) -> GpuDevice:
    total = used = None
    for label, value in card.items():
        if m := _TOTAL.match(label):
            total = mib(value, m.group(1).lower())
        elif m := _USED.match(label):
            used = mib(value, m.group(1).lower())
    uuid = text(_get(card, "unique id"))
    serial = text(_get(card, "serial number"))
    return make_device(
        vendor=vendor, index=index,
        uuid=(uuid.removeprefix("0x") if uuid else None) or serial,
        name=next((n for n in (text(_get(card, k)) for k in _NAMES) if n), None),
        total_mb=total, used_mb=used,
        utilization=next((number(v) for k, v in card.items() if _USE.match(k)), None),
        temperature=_temperature(card),
        power=next((number(v) for k, v in card.items() if _POWER.search(k)), None),
        driver=text(_get(card, "driver version")) or driver,
        pci_bus_id=text(_get(card, "pci bus")),
    )


def _temperature(card: Mapping[str, Any]) -> float | None:
    for sensor in _TEMPS:
        value = number(_get(card, f"temperature (sensor {sensor}) (c)"))
        if value is not None:
            return value
    return None


def _get(card: Mapping[str, Any] | None, label: str) -> Any:
    if not card:
        return None
    for key, value in card.items():
        if key.lower() == label:
            return value
    return None
