"""NVIDIA GPUs through NVML (``nvidia-ml-py``), with ``nvidia-smi``'s query CSV as the
fallback when the NVML library cannot be loaded from Python (the tool ships its own).

NVML is a synchronous C library, so it runs in a worker thread. Compute capability is read
here because Nomad's NVIDIA plugin does not report it and vLLM needs >= 7.5.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pynvml  # type: ignore[import-untyped]

from agent_plugin.detectors.base import DetectContext, make_device, text
from agent_plugin.detectors.smi_csv import BASE_FIELDS, parse_query_csv, query_args
from agent_plugin.errors import DetectError, LibraryUnavailable
from agent_plugin.models import GpuDevice

_MIB = 1024 * 1024
NVML_TEMPERATURE_GPU = 0
SMI_FIELDS = (*BASE_FIELDS, "compute_cap")
T = TypeVar("T")


class Nvml(Protocol):
    """The part of pynvml's API the detector uses (pynvml itself satisfies it)."""

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlSystemGetDriverVersion(self) -> str | bytes: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...
    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int: ...
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int: ...
    def nvmlDeviceGetPciInfo(self, handle: Any) -> Any: ...
    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]: ...
    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle: Any) -> int: ...


class NvidiaDetector:
    vendor = "nvidia"

    def __init__(self, nvml: Nvml | None = None) -> None:
        self._nvml: Nvml = nvml if nvml is not None else pynvml

    async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
        try:
            return await asyncio.to_thread(read_nvml, self._nvml)
        except LibraryUnavailable as nvml_problem:
            try:
                out = await ctx.tools.run("nvidia-smi", *query_args(SMI_FIELDS, nounits=True))
            except DetectError as smi_problem:
                raise LibraryUnavailable(
                    f"{nvml_problem.message}; nvidia-smi: {smi_problem.message}") from None
            return parse_query_csv(out.stdout, vendor=self.vendor, tool="nvidia-smi",
                                   fields=SMI_FIELDS)


def read_nvml(nvml: Nvml) -> list[GpuDevice]:
    try:
        nvml.nvmlInit()
    except Exception as exc:  # pynvml raises its own NVMLError tree, or OSError
        raise LibraryUnavailable(f"NVML could not be initialised: {exc}") from exc
    try:
        driver = text(nvml.nvmlSystemGetDriverVersion())
        return [_device(nvml, i, driver) for i in range(nvml.nvmlDeviceGetCount())]
    except Exception as exc:
        raise LibraryUnavailable(f"NVML failed while reading devices: {exc}") from exc
    finally:
        _optional(nvml.nvmlShutdown)


def _device(nvml: Nvml, index: int, driver: str | None) -> GpuDevice:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = _optional(nvml.nvmlDeviceGetMemoryInfo, handle)  # unsupported on unified memory
    utilization = _optional(lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
    temperature = _optional(
        lambda: float(nvml.nvmlDeviceGetTemperature(handle, NVML_TEMPERATURE_GPU)))
    power = _optional(lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0)  # mW
    capability = _optional(nvml.nvmlDeviceGetCudaComputeCapability, handle)
    pending = _optional(nvml.nvmlDeviceGetRetiredPagesPendingStatus, handle)
    return make_device(
        vendor="nvidia", index=index, uuid=text(nvml.nvmlDeviceGetUUID(handle)),
        name=text(nvml.nvmlDeviceGetName(handle)),
        total_mb=int(memory.total) // _MIB if memory else None,
        used_mb=int(memory.used) // _MIB if memory else None,
        free_mb=int(memory.free) // _MIB if memory else None,
        utilization=utilization, temperature=temperature,
        power=power, driver=driver,
        pci_bus_id=_optional(lambda: text(nvml.nvmlDeviceGetPciInfo(handle).busId)),
        compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
        health_problem=("retired memory pages are pending; the GPU needs a reset"
                        if pending else None),
    )


def _optional(call: Callable[..., T], *args: Any) -> T | None:
    """A reading some GPUs do not support (NVML answers NotSupported): absent, not fatal."""
    try:
        return call(*args)
    except Exception:
        return None
