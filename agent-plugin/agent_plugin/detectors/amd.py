"""AMD GPUs: ``amd-smi`` (ROCm 6+), then ``rocm-smi`` (older ROCm), then the amdgpu
driver's sysfs files when neither tool is installed (e.g. a container without ROCm).

amd-smi JSON (``static --json`` and ``metric ... --json``) is a list of per-GPU objects, or
since ROCm 6.4 an object with that list under ``"gpu_data"``; readings are
``{"value": v, "unit": u}`` or the string "N/A". amd-smi's "MB" are MiB.
Hygon DCUs also answer rocm-smi on DTK installs; those belong to the Hygon detector.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent_plugin.detectors.amd_sysfs import read_amd_sysfs
from agent_plugin.detectors.base import DetectContext, make_device, mib, number, text
from agent_plugin.detectors.rocm_json import is_hygon_card, parse_rocm_json
from agent_plugin.errors import DetectError, UnparsableOutput
from agent_plugin.models import GpuDevice

AMD_SMI_METRIC_ARGS = ("metric", "--usage", "--power", "--temperature", "--mem-usage",
                       "--json")
ROCM_SMI_ARGS = ("--showproductname", "--showuniqueid", "--showbus", "--showmeminfo", "vram",
                 "--showuse", "--showtemp", "--showpower", "--showdriverversion", "--json")


class AmdDetector:
    vendor = "amd"

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        reasons = []
        try:
            static = await ctx.tools.run("amd-smi", "static", "--json")
            metric = await ctx.tools.run("amd-smi", *AMD_SMI_METRIC_ARGS)
            return parse_amd_smi(static.stdout, metric.stdout)
        except DetectError as exc:
            reasons.append(f"amd-smi: {exc.message}")
        try:
            out = await ctx.tools.run("rocm-smi", *ROCM_SMI_ARGS)
            return parse_rocm_json(out.stdout, vendor=self.vendor, tool="rocm-smi",
                                   accept=lambda card: not is_hygon_card(card))
        except DetectError as exc:
            reasons.append(f"rocm-smi: {exc.message}")
        try:
            return await read_amd_sysfs(ctx.sysfs_root)
        except DetectError as exc:
            reasons.append(f"sysfs: {exc.message}")
        raise DetectError("; ".join(reasons))


def parse_amd_smi(static_json: str, metric_json: str) -> list[GpuDevice]:
    statics = {_gpu_id(g): g for g in _gpu_list(static_json, "amd-smi static")}
    metrics = {_gpu_id(g): g for g in _gpu_list(metric_json, "amd-smi metric")}
    devices = []
    for gpu_id in sorted(statics.keys() | metrics.keys()):
        static, metric = statics.get(gpu_id, {}), metrics.get(gpu_id, {})
        asic, bus, driver = _obj(static, "asic"), _obj(static, "bus"), _obj(static, "driver")
        memory = _obj(metric, "mem_usage")
        temps = _obj(metric, "temperature")
        devices.append(make_device(
            vendor="amd", index=gpu_id,
            uuid=text(asic.get("asic_serial")) or text(static.get("uuid")),
            name=text(asic.get("market_name")),
            total_mb=mib(_reading(memory, "total_vram")),
            used_mb=mib(_reading(memory, "used_vram")),
            free_mb=mib(_reading(memory, "free_vram")),
            utilization=number(_reading(_obj(metric, "usage"), "gfx_activity")),
            temperature=next((t for t in (number(_reading(temps, k))
                                          for k in ("hotspot", "edge", "mem")) if t is not None),
                             None),
            power=number(_reading(_obj(metric, "power"), "socket_power")),
            driver=text(driver.get("version")), pci_bus_id=text(bus.get("bdf")),
        ))
    return devices


def _gpu_list(output: str, tool: str) -> list[Mapping[str, Any]]:
    try:
        document = json.loads(output)
    except json.JSONDecodeError as exc:
        raise UnparsableOutput(f"{tool} did not print JSON: {exc.msg}") from None
    if isinstance(document, dict) and isinstance(document.get("gpu_data"), list):
        document = document["gpu_data"]
    if not isinstance(document, list) or not all(
            isinstance(g, dict) and isinstance(g.get("gpu"), int) for g in document):
        raise UnparsableOutput(f"{tool} printed JSON without a list of GPUs")
    return document


def _gpu_id(gpu: Mapping[str, Any]) -> int:
    return int(gpu["gpu"])


def _obj(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _reading(group: Mapping[str, Any], key: str) -> Any:
    value = group.get(key)
    if isinstance(value, dict):
        unit = value.get("unit")
        return f"{value.get('value')} {unit}" if unit else value.get("value")
    return value
