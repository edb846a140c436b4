"""The GPU vendors, and per vendor which environment variables make only a task's GPUs
visible and which device files its container needs: one registry, one entry per vendor.
The agent's detectors, the agent's executor and the bridge's placement all read it.

Sources: NVIDIA's CUDA and container-toolkit documentation; gpustack-runtime's defaults for
the "backend" variables of AMD, Hygon, Ascend, Cambricon, Iluvatar, MetaX and Moore Threads
and its CDI specs for their device files. Entries marked *unverified* follow the vendor
names we were given but could not check against the vendor's own documentation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# The hardware vendors a detector exists for, in detection order; a static inventory may
# name others.
VENDORS: tuple[str, ...] = ("nvidia", "amd", "hygon", "ascend", "musa", "biren", "cambricon",
                            "iluvatar", "metax", "enflame", "kunlunxin")


class UnknownVendor(ValueError):
    """No visibility rules are known for this vendor (e.g. a static inventory's name)."""


def _same(ids: Sequence[str]) -> str:
    return ",".join(ids)


def _renumbered(ids: Sequence[str]) -> str:
    return ",".join(str(i) for i in range(len(ids)))


@dataclass(frozen=True, slots=True)
class EnvRule:
    name: str
    value: Callable[[Sequence[str]], str] = _same
    none: str = ""  # the value that hides every device


@dataclass(frozen=True, slots=True)
class Visibility:
    env: tuple[EnvRule, ...]
    device_files: tuple[str, ...]  # glob patterns under /dev


VISIBILITY: dict[str, Visibility] = {
    # CUDA_VISIBLE_DEVICES for a local process; the container toolkit reads
    # NVIDIA_VISIBLE_DEVICES ("void" = no GPU, while "" would mean "the default").
    "nvidia": Visibility(
        env=(EnvRule("CUDA_VISIBLE_DEVICES"), EnvRule("NVIDIA_VISIBLE_DEVICES", none="void")),
        device_files=("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
                      "/dev/nvidia[0-9]*"),
    ),
    # ROCR_VISIBLE_DEVICES filters first and renumbers; HIP_VISIBLE_DEVICES then indexes
    # the survivors, so it must count from 0 or the two would disagree.
    "amd": Visibility(
        env=(EnvRule("ROCR_VISIBLE_DEVICES"), EnvRule("HIP_VISIBLE_DEVICES", _renumbered)),
        device_files=("/dev/kfd", "/dev/dri"),
    ),
    # Hygon's DTK is ROCm-derived; gpustack-runtime sets HIP_VISIBLE_DEVICES only.
    "hygon": Visibility(
        env=(EnvRule("HIP_VISIBLE_DEVICES"),),
        device_files=("/dev/kfd", "/dev/mkfd", "/dev/dri"),
    ),
    # ASCEND_RT_VISIBLE_DEVICES takes logical chip ids (npu-smi info -m); the Ascend
    # container runtime reads ASCEND_VISIBLE_DEVICES.
    "ascend": Visibility(
        env=(EnvRule("ASCEND_RT_VISIBLE_DEVICES"), EnvRule("ASCEND_VISIBLE_DEVICES")),
        device_files=("/dev/davinci[0-9]*", "/dev/davinci_manager", "/dev/devmm_svm",
                      "/dev/hisi_hdc"),
    ),
    # The MUSA runtime reads MUSA_VISIBLE_DEVICES; the mt-container-toolkit reads
    # MTHREADS_VISIBLE_DEVICES.
    "musa": Visibility(
        env=(EnvRule("MUSA_VISIBLE_DEVICES"), EnvRule("MTHREADS_VISIBLE_DEVICES")),
        device_files=("/dev/mtgpu.*", "/dev/dri"),
    ),
    # unverified: Biren's variable and device nodes (BR_VISIBLE_DEVICES, /dev/biren*)
    "biren": Visibility(env=(EnvRule("BR_VISIBLE_DEVICES"),),
                        device_files=("/dev/biren*",)),
    "cambricon": Visibility(
        env=(EnvRule("MLU_VISIBLE_DEVICES"),),
        device_files=("/dev/cambricon_dev*", "/dev/cambricon_ctl", "/dev/cambricon_ipcm*"),
    ),
    # Iluvatar's CoreX is CUDA-compatible and reads CUDA_VISIBLE_DEVICES.
    "iluvatar": Visibility(env=(EnvRule("CUDA_VISIBLE_DEVICES"),),
                           device_files=("/dev/iluvatar*", "/dev/itrctl")),
    # MetaX's MACA honours CUDA_VISIBLE_DEVICES (gpustack-runtime uses only that one). We
    # do not also set MACA_VISIBLE_DEVICES: if MACA applied both, ids would be filtered
    # twice, as ROCR and HIP do on AMD.
    "metax": Visibility(env=(EnvRule("CUDA_VISIBLE_DEVICES"),),
                        device_files=("/dev/mxcd", "/dev/mxnd", "/dev/mxgd", "/dev/dri")),
    # unverified: TOPS_VISIBLE_DEVICES and the /dev/gcu* nodes
    "enflame": Visibility(env=(EnvRule("TOPS_VISIBLE_DEVICES"),),
                          device_files=("/dev/gcu*", "/dev/gcuctl")),
    "kunlunxin": Visibility(env=(EnvRule("XPU_VISIBLE_DEVICES"),),
                            device_files=("/dev/xpu[0-9]*", "/dev/xpuctrl")),
}


def visible_devices_env(vendor: str, ids: Sequence[int | str]) -> dict[str, str]:
    """The variables that make exactly ``ids`` visible (none at all when ``ids`` is empty)."""
    rules = _rules(vendor)
    names = [str(i) for i in ids]
    return {r.name: (r.value(names) if names else r.none) for r in rules.env}


def device_files(vendor: str) -> list[str]:
    """Device-file patterns a container of this vendor needs mapped in."""
    return list(_rules(vendor).device_files)


def _rules(vendor: str) -> Visibility:
    try:
        return VISIBILITY[vendor]
    except KeyError:
        raise UnknownVendor(
            f"no visible-devices rules for vendor {vendor!r}; known: {', '.join(VISIBILITY)}"
        ) from None
