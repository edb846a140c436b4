"""The agent's wire contracts: what it tells the bridge about GPUs and models.

These shapes are shared with the bridge and the agent's HTTP side, so the JSON keys are
fixed: every class has ``to_json()`` (a dict of JSON values) and ``from_json()`` (which
raises ``ShapeError`` on a wrong shape). Memory is in MiB ("mb" in the key names, as
nvidia-smi and the bridge's ``estimated_gpu_memory_mb`` use it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_plugin._json import (
    ShapeError,
    opt_float,
    opt_int,
    opt_str,
    req_bool,
    req_float,
    req_int,
    req_list,
    req_object,
    req_str,
)

ModelFormat = Literal["huggingface", "gguf"]
MODEL_FORMATS: tuple[str, ...] = ("huggingface", "gguf")


@dataclass(frozen=True, slots=True)
class GpuDevice:
    """One accelerator as its vendor's tool reports it."""

    vendor: str
    index: int  # the id the vendor's visible-devices variable takes
    uuid: str  # UUID where the tool has one, else a serial or the PCI bus id
    name: str
    memory_total_mb: int
    memory_used_mb: int
    memory_free_mb: int
    utilization_percent: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    driver_version: str | None = None
    pci_bus_id: str | None = None
    healthy: bool = True
    health_reason: str = ""  # why it is unhealthy; "" when healthy
    compute_capability: str | None = None  # NVIDIA only, e.g. "8.0"

    def to_json(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor, "index": self.index, "uuid": self.uuid, "name": self.name,
            "memory_total_mb": self.memory_total_mb, "memory_used_mb": self.memory_used_mb,
            "memory_free_mb": self.memory_free_mb,
            "utilization_percent": self.utilization_percent,
            "temperature_c": self.temperature_c, "power_w": self.power_w,
            "driver_version": self.driver_version, "pci_bus_id": self.pci_bus_id,
            "healthy": self.healthy, "health_reason": self.health_reason,
            "compute_capability": self.compute_capability,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GpuDevice:
        return cls(
            vendor=req_str(data, "vendor"), index=req_int(data, "index"),
            uuid=req_str(data, "uuid"), name=req_str(data, "name"),
            memory_total_mb=req_int(data, "memory_total_mb"),
            memory_used_mb=req_int(data, "memory_used_mb"),
            memory_free_mb=req_int(data, "memory_free_mb"),
            utilization_percent=opt_float(data, "utilization_percent"),
            temperature_c=opt_float(data, "temperature_c"), power_w=opt_float(data, "power_w"),
            driver_version=opt_str(data, "driver_version"),
            pci_bus_id=opt_str(data, "pci_bus_id"), healthy=req_bool(data, "healthy"),
            health_reason=req_str(data, "health_reason"),
            compute_capability=opt_str(data, "compute_capability"),
        )


@dataclass(frozen=True, slots=True)
class DetectionReport:
    """All devices found, and for every vendor that contributed none, why not."""

    devices: tuple[GpuDevice, ...] = ()
    skipped: Mapping[str, str] = field(default_factory=dict)  # vendor -> reason

    def to_json(self) -> dict[str, Any]:
        return {"devices": [d.to_json() for d in self.devices], "skipped": dict(self.skipped)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DetectionReport:
        skipped = req_object(data.get("skipped"), "'skipped'")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in skipped.items()):
            raise ShapeError("'skipped' must map vendor names to reason strings")
        return cls(
            devices=tuple(GpuDevice.from_json(req_object(d, "a device"))
                          for d in req_list(data, "devices")),
            skipped=dict(skipped),
        )


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One servable model on this node: a GGUF file or a HuggingFace folder."""

    name: str
    format: ModelFormat
    path: str  # absolute: the GGUF file, or the HuggingFace folder
    size_bytes: int  # the files an engine loads (one weight format, config, tokenizer)
    mtime: float  # newest mtime among those files, seconds since the epoch
    architecture: str | None = None
    parameter_count: int | None = None
    quantization: str | None = None  # "Q4_1", "bf16", "awq-4bit", ...
    context_length: int | None = None
    # what the KV-cache estimate needs
    num_layers: int | None = None
    hidden_size: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    estimated_vram_mb: int | None = None
    vram_explanation: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "format": self.format, "path": self.path,
            "size_bytes": self.size_bytes, "architecture": self.architecture,
            "parameter_count": self.parameter_count, "quantization": self.quantization,
            "context_length": self.context_length, "num_layers": self.num_layers,
            "hidden_size": self.hidden_size, "num_kv_heads": self.num_kv_heads,
            "head_dim": self.head_dim, "estimated_vram_mb": self.estimated_vram_mb,
            "vram_explanation": self.vram_explanation, "mtime": self.mtime,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelInfo:
        fmt = req_str(data, "format")
        if fmt == "huggingface":
            model_format: ModelFormat = "huggingface"
        elif fmt == "gguf":
            model_format = "gguf"
        else:
            raise ShapeError(f"'format' must be one of {MODEL_FORMATS}, got {fmt!r}")
        return cls(
            name=req_str(data, "name"), format=model_format, path=req_str(data, "path"),
            size_bytes=req_int(data, "size_bytes"), mtime=req_float(data, "mtime"),
            architecture=opt_str(data, "architecture"),
            parameter_count=opt_int(data, "parameter_count"),
            quantization=opt_str(data, "quantization"),
            context_length=opt_int(data, "context_length"),
            num_layers=opt_int(data, "num_layers"), hidden_size=opt_int(data, "hidden_size"),
            num_kv_heads=opt_int(data, "num_kv_heads"), head_dim=opt_int(data, "head_dim"),
            estimated_vram_mb=opt_int(data, "estimated_vram_mb"),
            vram_explanation=req_str(data, "vram_explanation"),
        )


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What one scan found: the changes since the previous scan, and everything current."""

    added: tuple[ModelInfo, ...] = ()
    changed: tuple[ModelInfo, ...] = ()
    removed: tuple[str, ...] = ()  # paths
    models: tuple[ModelInfo, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": [m.to_json() for m in self.added],
            "changed": [m.to_json() for m in self.changed],
            "removed": list(self.removed),
            "models": [m.to_json() for m in self.models],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScanResult:
        def infos(key: str) -> tuple[ModelInfo, ...]:
            return tuple(ModelInfo.from_json(req_object(m, "a model"))
                         for m in req_list(data, key))

        removed = req_list(data, "removed")
        if not all(isinstance(p, str) for p in removed):
            raise ShapeError("'removed' must be a list of paths")
        return cls(added=infos("added"), changed=infos("changed"), removed=tuple(removed),
                   models=infos("models"))
