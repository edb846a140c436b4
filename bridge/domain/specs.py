"""Validated intent handed from the API layer to the services (not a REST schema, not a row)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.domain.models import Algorithm, Engine, GpuVendor, HealthCheck, PortMapping, QoS
from bridge.domain.topology import Parallelism


@dataclass(frozen=True, slots=True)
class RouteSpec:
    weight: int = 100
    priority: int = 0
    version: str = "v1"
    algorithm: Algorithm | None = None


@dataclass(frozen=True, slots=True)
class TaskGroupSpec:
    name: str
    image: str
    model_path: str
    engine: Engine | None = None
    command: str | None = None
    model_name: str | None = None
    parallelism: Parallelism = Parallelism.NONE
    world_size: int | None = None
    gpu_required: int = 1
    gpu_type: GpuVendor | None = None
    port: PortMapping = field(default_factory=lambda: PortMapping(container=8000))
    timeout_seconds: int = 0
    idle_timeout_minutes: int = 0
    enable_api: bool = True
    route: RouteSpec = field(default_factory=RouteSpec)
    qos: QoS = QoS.GOLD
    estimated_gpu_memory_mb: int | None = None
    health_check: HealthCheck = field(default_factory=HealthCheck)
    scale_policy: dict[str, Any] | None = None
    co_schedule: dict[str, Any] | None = None
    schedule_window: dict[str, Any] | None = None
    min_replicas: int = 1
    max_replicas: int = 0
    auto_scale: bool = False


@dataclass(frozen=True, slots=True)
class HeartbeatReport:
    """One agent heartbeat, validated (GPUs and models as the agent's JSON objects)."""

    node_id: str
    name: str
    agent_url: str | None
    agent_secret: str | None
    nomad_node_id: str | None
    facts: dict[str, Any]
    gpus: list[dict[str, Any]]
    skipped: dict[str, str]
    engines: list[str]
    models: list[dict[str, Any]] | None  # None: unchanged since the last report
    # task id -> {"metrics": {...}, "at": unix s} or {"missing": why, "at": ...}
    engine_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
