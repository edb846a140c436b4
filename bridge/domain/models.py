"""Domain objects: what a TaskGroup, Task, endpoint, route, key, user and audit entry *are*.

These are neither REST schemas (bridge/api/schemas.py) nor storage rows
(bridge/storage/*.py); converters at each boundary keep the three apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from bridge.domain.status import RollingUpdateState, TaskGroupStatus, TaskStatus
from bridge.domain.topology import Parallelism
from heteroflow_contracts import algorithms

JSONObject = dict[str, Any]


class Algorithm(StrEnum):
    ROUND_ROBIN = algorithms.ROUND_ROBIN
    RANDOM = algorithms.RANDOM
    LEAST_CONNECTIONS = algorithms.LEAST_CONNECTIONS


class QoS(StrEnum):
    GOLD = "gold"  # whole GPU, exclusive
    SILVER = "silver"  # shared GPU, driver-level isolation
    BRONZE = "bronze"  # shared GPU, best effort


class Engine(StrEnum):
    VLLM = "vllm"
    SGLANG = "sglang"
    LLAMACPP = "llamacpp"
    MINDIE = "mindie"
    VLLM_MTT = "vllm-mtt"
    TRANSFORMERS = "transformers"


# Engines that can serve a model with no GPU at all (llama.cpp with 0 GPU layers,
# transformers on the CPU): the only ones a gpu_required=0 service may use.
CPU_CAPABLE_ENGINES = frozenset({Engine.LLAMACPP, Engine.TRANSFORMERS})


class GpuVendor(StrEnum):
    NVIDIA = "nvidia"
    AMD = "amd"
    HYGON = "hygon"
    ASCEND = "ascend"
    MUSA = "musa"  # Moore Threads
    BIREN = "biren"
    CAMBRICON = "cambricon"
    ILUVATAR = "iluvatar"
    METAX = "metax"
    ENFLAME = "enflame"
    KUNLUNXIN = "kunlunxin"


class Role(StrEnum):
    ADMIN = "admin"  # everything, including users
    OPERATOR = "operator"  # services, routes and keys; not users
    VIEWER = "viewer"  # read only
    AGENT = "agent"  # a node agent's service account: heartbeats only
    GATEWAY = "gateway"  # a gateway's service account: waking sleeping tasks only


@dataclass(frozen=True, slots=True)
class PortMapping:
    """``8000`` (container port, host port picked by placement) or ``8080:8000``."""

    container: int
    host: int | None = None

    def as_json(self) -> JSONObject:
        return {"host": self.host, "container": self.container}


@dataclass(frozen=True, slots=True)
class HealthCheck:
    type: str = "http"  # http | tcp
    path: str = "/health"
    interval_seconds: int = 10
    timeout_seconds: int = 3
    unhealthy_threshold: int = 3


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    group_id: str
    rank: int
    status: TaskStatus
    status_reason: str
    image: str
    gpu_required: int
    gpu_type: str | None
    gpu_id: str | None
    node_id: str | None
    model_path: str
    ports: list[JSONObject]
    volumes: list[JSONObject]
    estimated_gpu_memory_mb: int | None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    address: str | None = None  # host:port of the engine, once placed
    alloc_id: str | None = None
    node_name: str | None = None
    sleep_mode: str | None = None  # vllm | sglang | paused, while asleep
    gpu_released: bool = False  # asleep with its GPU memory given back


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """One version of a model: a task group, or an external OpenAI-compatible upstream."""

    id: str
    model_name: str
    task_group_id: str | None
    engine: str | None
    priority: int
    weight: int
    version: str
    algorithm: Algorithm | None
    status: str  # active | inactive
    created_at: datetime | None = None
    updated_at: datetime | None = None
    upstream_url: str | None = None  # e.g. https://api.provider.example/v1
    upstream_model: str | None = None  # the model's name there (None: model_name)
    has_upstream_key: bool = False  # the key itself is sealed and never leaves the bridge
    endpoint_id: str | None = None  # an external route's own endpoint (its keys' owner)
    first_byte_timeout_s: float | None = None  # the gateway's bound for it (None: default)


@dataclass(frozen=True, slots=True)
class InferenceEndpoint:
    id: str
    name: str
    task_group_id: str | None  # None: the endpoint of an external route
    protocol: str
    port: int
    algorithm: Algorithm
    health_check: HealthCheck
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaskGroup:
    id: str
    name: str
    status: TaskGroupStatus
    status_reason: str
    parallelism: Parallelism
    world_size: int
    node_count: int
    current_replicas: int
    min_replicas: int
    max_replicas: int
    auto_scale: bool
    endpoint_id: str | None
    rolling_update_state: RollingUpdateState
    idle_timeout_minutes: int
    timeout_seconds: int
    image: str
    engine: Engine | None
    command: str | None
    model_path: str
    model_name: str
    gpu_required: int
    gpu_type: GpuVendor | None
    ports: list[PortMapping]
    qos: QoS
    estimated_gpu_memory_mb: int | None
    enable_api: bool
    health_check: HealthCheck
    scale_policy: JSONObject | None
    co_schedule: JSONObject | None
    schedule_window: JSONObject | None
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    tasks: list[Task] = field(default_factory=list)
    nomad_job_id: str | None = None
    job_modify_index: int | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    endpoint_id: str
    name: str
    prefix: str
    created_by: str | None
    created_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    role: Role
    disabled: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the user behind a bearer token."""

    user_id: str
    name: str
    role: Role
    token_id: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor_id: str | None
    actor_name: str
    action: str
    object_type: str
    object_id: str
    details: JSONObject
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Node:
    """A machine as its agent reports it."""

    id: str
    name: str
    status: str  # online | offline
    status_reason: str
    agent_url: str | None
    nomad_node_id: str | None
    facts: JSONObject
    gpus: list[JSONObject]
    skipped_vendors: dict[str, str]
    engines: list[str]
    models: list[JSONObject]
    last_heartbeat: datetime
    created_at: datetime

    @property
    def model_count(self) -> int:
        return len(self.models)
