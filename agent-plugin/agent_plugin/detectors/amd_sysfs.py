"""AMD GPUs from the amdgpu driver's sysfs files, for hosts without amd-smi or rocm-smi.

Under ``<sysfs>/class/drm/cardN/device``: ``vendor`` (0x1002), ``mem_info_vram_total`` and
``mem_info_vram_used`` (bytes), ``gpu_busy_percent``, ``unique_id``, ``product_name``,
``uevent`` (``PCI_SLOT_NAME``), and ``hwmon/hwmonM/temp1_input`` (millidegrees C) and
``power1_average`` or ``power1_input`` (microwatts). Any of these may be missing or
unreadable (the SMU answers EBUSY on some cards); a missing reading stays None.
Devices are numbered in card order, which is the order ROCm enumerates them in.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from agent_plugin.detectors.base import make_device, number, text
from agent_plugin.errors import DetectError
from agent_plugin.models import GpuDevice

AMD_PCI_VENDOR = "0x1002"
_MIB = 1024 * 1024
_CARD = re.compile(r"^card(\d+)$")


async def read_amd_sysfs(sysfs_root: Path) -> list[GpuDevice]:
    return await asyncio.to_thread(_read, sysfs_root)


def _read(sysfs_root: Path) -> list[GpuDevice]:
    drm = sysfs_root / "class" / "drm"
    if not drm.is_dir():
        raise DetectError(f"{drm} does not exist (no DRM driver loaded)")
    cards = sorted((int(m.group(1)), p) for p in drm.iterdir()
                   if (m := _CARD.match(p.name)))
    amd = [(n, p / "device") for n, p in cards
           if _read_text(p / "device" / "vendor") == AMD_PCI_VENDOR]
    if not amd:
        raise DetectError(f"no AMD GPU under {drm}")
    driver = _read_text(sysfs_root / "module" / "amdgpu" / "version")
    return [_device(i, dev, driver) for i, (_, dev) in enumerate(amd)]


def _device(index: int, dev: Path, driver: str | None) -> GpuDevice:
    total = number(_read_text(dev / "mem_info_vram_total"))
    used = number(_read_text(dev / "mem_info_vram_used"))
    hwmon = sorted((dev / "hwmon").glob("hwmon*")) if (dev / "hwmon").is_dir() else []
    temperature = power = None
    for mon in hwmon:
        milli_c = number(_read_text(mon / "temp1_input"))
        micro_w = number(_read_text(mon / "power1_average")) \
            or number(_read_text(mon / "power1_input"))
        temperature = milli_c / 1000 if milli_c is not None else temperature
        power = micro_w / 1_000_000 if micro_w is not None else power
    slot = None
    for line in (_read_text(dev / "uevent") or "").splitlines():
        if line.startswith("PCI_SLOT_NAME="):
            slot = line.split("=", 1)[1]
    device_id = _read_text(dev / "device")
    return make_device(
        vendor="amd", index=index, uuid=_read_text(dev / "unique_id"),
        name=_read_text(dev / "product_name") or (f"AMD GPU {device_id}" if device_id else None),
        total_mb=int(total) // _MIB if total is not None else None,
        used_mb=int(used) // _MIB if used is not None else None,
        utilization=number(_read_text(dev / "gpu_busy_percent")), temperature=temperature,
        power=power, driver=driver, pci_bus_id=slot,
    )


def _read_text(path: Path) -> str | None:
    try:
        return text(path.read_text())
    except OSError:  # missing, or EBUSY from the SMU
        return None
