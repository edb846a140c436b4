"""What a task given some of a vendor's devices needs: the device files, the driver mounts
and the visible-devices variables that Reserve answers Nomad with.

The answer is for container tasks (Nomad's docker and exec drivers map the device files).
Inside such a task only the reserved devices' nodes exist, so the runtimes that enumerate
device nodes (ROCm, CANN, MUSA, Neuware, ...) number the reserved devices from 0: their
variables count 0..n-1. The variables a vendor's container runtime reads on the host
(NVIDIA_VISIBLE_DEVICES, ASCEND_VISIBLE_DEVICES, MTHREADS_VISIBLE_DEVICES) take host ids.
NVIDIA's are UUIDs, which both CUDA and the container toolkit accept in either place.
docs/device-plugin.md gives the table with the source of each entry.
"""

from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from agent_plugin.models import GpuDevice
from heteroflow_contracts.gpu_sharing import mps_limits


class Ids(Enum):
    UUID = "uuid"  # the device's UUID
    HOST = "host"  # the vendor tool's index on the host
    TASK = "task"  # 0..n-1: the numbering inside a task that sees only these devices


@dataclass(frozen=True, slots=True)
class VendorDevices:
    env: tuple[tuple[str, Ids], ...]
    shared: tuple[str, ...] = ()  # control nodes under /dev (globs); only those present
    per_device: str | None = None  # one device's node under /dev, "{index}" filled in
    dri: bool = False  # the device's DRM render and card nodes, found by PCI bus id
    mounts: tuple[str, ...] = ()  # host folders mounted read-only at the same path


VENDOR_DEVICES: dict[str, VendorDevices] = {
    "nvidia": VendorDevices(
        env=(("NVIDIA_VISIBLE_DEVICES", Ids.UUID), ("CUDA_VISIBLE_DEVICES", Ids.UUID)),
        shared=("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset"),
        per_device="nvidia{index}"),
    "amd": VendorDevices(
        env=(("ROCR_VISIBLE_DEVICES", Ids.TASK), ("HIP_VISIBLE_DEVICES", Ids.TASK)),
        shared=("kfd",), dri=True),
    "hygon": VendorDevices(env=(("HIP_VISIBLE_DEVICES", Ids.TASK),),
                           shared=("kfd", "mkfd"), dri=True),
    "ascend": VendorDevices(
        env=(("ASCEND_VISIBLE_DEVICES", Ids.HOST), ("ASCEND_RT_VISIBLE_DEVICES", Ids.TASK)),
        shared=("davinci_manager", "devmm_svm", "hisi_hdc"), per_device="davinci{index}",
        mounts=("/usr/local/Ascend/driver",)),
    "musa": VendorDevices(
        env=(("MTHREADS_VISIBLE_DEVICES", Ids.HOST), ("MUSA_VISIBLE_DEVICES", Ids.TASK)),
        per_device="mtgpu.{index}", dri=True),
    "biren": VendorDevices(env=(("BR_VISIBLE_DEVICES", Ids.TASK),), per_device="biren{index}"),
    "cambricon": VendorDevices(env=(("MLU_VISIBLE_DEVICES", Ids.TASK),),
                               shared=("cambricon_ctl", "cambricon_ipcm*"),
                               per_device="cambricon_dev{index}"),
    "iluvatar": VendorDevices(env=(("CUDA_VISIBLE_DEVICES", Ids.TASK),), shared=("itrctl",),
                              per_device="iluvatar{index}"),
    "metax": VendorDevices(env=(("CUDA_VISIBLE_DEVICES", Ids.TASK),),
                           shared=("mxcd", "mxnd", "mxgd"), dri=True),
    "enflame": VendorDevices(env=(("TOPS_VISIBLE_DEVICES", Ids.TASK),), shared=("gcuctl",),
                             per_device="gcu{index}"),
    "kunlunxin": VendorDevices(env=(("XPU_VISIBLE_DEVICES", Ids.TASK),), shared=("xpuctrl",),
                               per_device="xpu{index}"),
}


class ReservationError(ValueError):
    """The devices cannot be handed to a task; the message says why."""


@dataclass(frozen=True, slots=True)
class DeviceFile:
    host_path: str
    task_path: str
    permissions: str = "rwm"


@dataclass(frozen=True, slots=True)
class Reservation:
    envs: dict[str, str] = field(default_factory=dict)
    devices: tuple[DeviceFile, ...] = ()
    mounts: tuple[tuple[str, str], ...] = ()  # (host path, task path), read-only


def reserve(devices: Sequence[GpuDevice], host_root: Path = Path("/")) -> Reservation:
    """The reservation for ``devices`` (all of one vendor). ``host_root`` is where the
    host's /dev and driver folders are looked up; task paths are always the real ones."""
    if not devices:
        return Reservation()
    vendors = {d.vendor for d in devices}
    if len(vendors) > 1:
        raise ReservationError(f"one reservation cannot mix vendors: {sorted(vendors)}")
    (vendor,) = vendors
    host_root = host_root.resolve()
    rules = VENDOR_DEVICES.get(vendor)
    if rules is None:
        return Reservation()  # a static inventory's own vendor name: nothing is known
    ordered = sorted(devices, key=lambda d: d.index)
    files: list[DeviceFile] = []
    dev = host_root / "dev"
    for pattern in rules.shared:
        files.extend(_present(dev, pattern, host_root))
    for device in ordered:
        if rules.per_device is not None:
            number = _nvidia_minor(device, host_root) if vendor == "nvidia" else None
            node = rules.per_device.format(index=device.index if number is None else number)
            files.append(_required(dev / node, device, host_root))
        if rules.dri:
            files.extend(_dri_nodes(dev, device, host_root))
    mounts = tuple((str(host_root / m.lstrip("/")), m) for m in rules.mounts
                   if (host_root / m.lstrip("/")).is_dir())
    envs = {name: _ids(kind, ordered) for name, kind in rules.env}
    return Reservation(envs=envs, devices=tuple(dict.fromkeys(files)), mounts=mounts)


def with_share_limits(res: Reservation, shares: Sequence[tuple[int, int]],
                      gpus: Sequence[GpuDevice]) -> Reservation:
    """A reservation of GPU shares, with the driver-level limits the vendor offers: for
    NVIDIA, MPS's per-client thread percentage (1/K of the SMs per share held) and pinned
    memory limit (the shares' budgets), which the CUDA runtime inside the task applies when
    the node runs an MPS control daemon (docs/gpu-sharing.md, "Silver"). Other vendors'
    shares get no variables: bronze, accounted by Nomad's share count and budgets only."""
    if not shares or not gpus or gpus[0].vendor != "nvidia" or len(gpus) != 1:
        return res
    k, budget = shares[0]
    envs = {**res.envs, **mps_limits(len(shares), k, budget)}
    return Reservation(envs=envs, devices=res.devices, mounts=res.mounts)


def pci_bus_id(raw: str) -> str:
    """The kernel's form of a PCI address ("0000:0c:00.0"): tools print 8-digit domains
    ("00000000:07:00.0") and upper case."""
    domain, _, rest = raw.strip().lower().rpartition(":")
    head = domain.split(":")
    if len(head) == 2:
        head[0] = head[0][-4:].rjust(4, "0")
        return f"{head[0]}:{head[1]}:{rest}"
    return f"0000:{domain}:{rest}" if domain else raw.lower()


def _ids(kind: Ids, devices: Sequence[GpuDevice]) -> str:
    if kind is Ids.UUID:
        return ",".join(d.uuid for d in devices)
    if kind is Ids.HOST:
        return ",".join(str(d.index) for d in devices)
    return ",".join(str(i) for i in range(len(devices)))


def _task_path(host_path: Path, host_root: Path) -> str:
    return "/" + str(host_path.relative_to(host_root)).lstrip("/")


def _present(dev: Path, pattern: str, host_root: Path) -> list[DeviceFile]:
    return [DeviceFile(host_path=p, task_path=_task_path(Path(p), host_root))
            for p in sorted(glob.glob(str(dev / pattern)))]


def _required(path: Path, device: GpuDevice, host_root: Path) -> DeviceFile:
    if not path.exists():
        raise ReservationError(f"{device.vendor} device {device.uuid}: {path} does not exist")
    return DeviceFile(host_path=str(path), task_path=_task_path(path, host_root))


def _nvidia_minor(device: GpuDevice, host_root: Path) -> int | None:
    """The driver's minor number (/dev/nvidia<minor>), from its per-GPU information file;
    None where the file is not there, and the NVML index, which usually equals it, serves."""
    if not device.pci_bus_id:
        return None
    info = host_root / "proc/driver/nvidia/gpus" / pci_bus_id(device.pci_bus_id) / "information"
    try:
        lines = info.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "Device Minor" and value.strip().isdigit():
            return int(value.strip())
    return None


def _dri_nodes(dev: Path, device: GpuDevice, host_root: Path) -> list[DeviceFile]:
    # DRM minors follow probe order, not the tool's index: only the PCI address says which
    # render node is this device's (udev's /dev/dri/by-path links).
    if not device.pci_bus_id:
        raise ReservationError(f"{device.vendor} device {device.uuid} has no PCI bus id, so "
                               "its DRM nodes cannot be told apart from other devices'")
    found = []
    for kind in ("card", "render"):
        link = dev / "dri" / "by-path" / f"pci-{pci_bus_id(device.pci_bus_id)}-{kind}"
        if not link.exists():
            raise ReservationError(f"{device.vendor} device {device.uuid}: {link} does not "
                                   "exist")
        node = (link.parent / link.readlink()).resolve() if link.is_symlink() else link
        found.append(DeviceFile(host_path=str(node), task_path=_task_path(node, host_root)))
    return found
