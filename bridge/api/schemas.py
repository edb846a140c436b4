"""REST contract of /api/v1: request and response models (never storage rows).

Requests are parsed strictly from JSON: unknown fields, wrong types ("1" for 1, 1 for true)
and out-of-range values are rejected with the field's path, before anything is written.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bridge.domain.models import Algorithm, Engine, GpuVendor, QoS, Role
from bridge.domain.status import RollingUpdateState, TaskGroupStatus, TaskStatus
from bridge.domain.topology import MAX_GPUS_PER_TASK, MAX_WORLD_SIZE, Parallelism

# A DNS label: the name becomes a Nomad job id, a Consul service name and a gateway model.
SERVICE_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# Model names as clients send them ("Qwen/Qwen2.5-7B-Instruct", "llama3:8b").
MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"
VERSION = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
# A Docker image reference: [registry[:port]/]repo[/...][:tag][@digest]; no spaces or quotes.
_COMPONENT = r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?"
IMAGE = (
    rf"^{_COMPONENT}(:[0-9]{{1,5}})?(/{_COMPONENT})*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
PORTS = re.compile(r"^([0-9]{1,5})(?::([0-9]{1,5}))?$")
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class HealthCheckIn(Strict):
    type: Literal["http", "tcp"] = "http"
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._~/?&=%-]{0,255}$")] = "/health"
    interval_seconds: Annotated[int, Field(ge=1, le=3600)] = 10
    timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 3
    unhealthy_threshold: Annotated[int, Field(ge=1, le=100)] = 3

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> HealthCheckIn:
        if self.timeout_seconds > self.interval_seconds:
            raise ValueError("timeout_seconds must not exceed interval_seconds")
        return self


ScaleMetric = Literal[
    "gpu_utilization", "cpu", "request_queue", "concurrent_requests",
    "vllm_pending_requests", "vllm_running_requests",
]


class ScalePolicyIn(Strict):
    metric: ScaleMetric
    target_value: Annotated[float, Field(gt=0, le=1_000_000)]
    cooldown_seconds: Annotated[int, Field(ge=30, le=86_400)] = 60


class CoScheduleIn(Strict):
    max_models_per_gpu: Annotated[int, Field(ge=1, le=8)] = 1
    estimated_vram_mb: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    vram_overcommit_ratio: Annotated[float, Field(ge=1.0, le=2.0)] = 1.0
    allow_preemption: bool = False


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleWindowIn(Strict):
    start: Annotated[str, Field(pattern=HHMM)]
    end: Annotated[str, Field(pattern=HHMM)]
    timezone: str = "UTC"
    days: list[Weekday] = Field(default_factory=lambda: list(ALL_DAYS), min_length=1,
                                max_length=7)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value != "UTC" and value not in available_timezones():
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)")
        return value


class RouteIn(Strict):
    weight: Annotated[int, Field(ge=0, le=100)] = 100
    priority: Annotated[int, Field(ge=0, le=1000)] = 0
    version: Annotated[str, Field(pattern=VERSION)] = "v1"
    algorithm: Algorithm | None = None


def parse_ports(value: str) -> tuple[int, int | None]:
    """``"8000"`` -> (8000, None); ``"8080:8000"`` -> (8000, 8080): (container, host)."""
    match = PORTS.match(value)
    if not match:
        raise ValueError(
            "ports must be 'CONTAINER' or 'HOST:CONTAINER', e.g. '8000' or '8080:8000'"
        )
    first, second = int(match.group(1)), match.group(2)
    numbers = [first] if second is None else [first, int(second)]
    if any(not 1 <= n <= 65535 for n in numbers):
        raise ValueError("port numbers must be 1-65535")
    return (first, None) if second is None else (int(second), first)


class CreateTaskGroup(Strict):
    name: Annotated[str, Field(pattern=SERVICE_NAME)]
    image: Annotated[str, Field(pattern=IMAGE, max_length=255)]
    engine: Engine | None = None
    command: Annotated[str, Field(min_length=1, max_length=8192)] | None = None
    model_path: Annotated[str, Field(min_length=1, max_length=4096)]
    model_name: Annotated[str, Field(pattern=MODEL_NAME)] | None = None
    parallelism: Parallelism | None = None
    world_size: Annotated[int, Field(ge=1, le=MAX_WORLD_SIZE)] | None = None
    gpu_required: Annotated[int, Field(ge=0, le=MAX_GPUS_PER_TASK)] = 1
    gpu_type: GpuVendor | None = None
    ports: str = "8000"
    timeout_seconds: Annotated[int, Field(ge=0, le=30 * 86_400)] = 0
    idle_timeout_minutes: Annotated[int, Field(ge=0, le=7 * 24 * 60)] = 0
    enable_api: bool = True
    route: RouteIn = Field(default_factory=RouteIn)
    qos: QoS = QoS.GOLD
    estimated_gpu_memory_mb: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    health_check: HealthCheckIn = Field(default_factory=HealthCheckIn)
    scale_policy: ScalePolicyIn | None = None
    co_schedule: CoScheduleIn | None = None
    schedule_window: ScheduleWindowIn | None = None
    min_replicas: Annotated[int, Field(ge=1, le=MAX_WORLD_SIZE)] = 1
    max_replicas: Annotated[int, Field(ge=0, le=MAX_WORLD_SIZE)] = 0
    auto_scale: bool = False

    @field_validator("ports")
    @classmethod
    def _ports(cls, value: str) -> str:
        parse_ports(value)
        return value

    @field_validator("model_path")
    @classmethod
    def _model_path(cls, value: str) -> str:
        if "\x00" in value or any(c in value for c in "\n\r\t"):
            raise ValueError("model_path must not contain control characters")
        if not value.startswith("/"):
            raise ValueError("model_path must be an absolute path, e.g. /models/qwen2.5-7b")
        if ".." in value.split("/"):
            raise ValueError("model_path must not contain '..' segments")
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("command must not contain NUL characters")
        return value

    @model_validator(mode="after")
    def _replicas(self) -> CreateTaskGroup:
        if self.max_replicas and self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) is below min_replicas ({self.min_replicas});"
                " use 0 for no upper limit"
            )
        if self.auto_scale and self.scale_policy is None:
            raise ValueError("auto_scale needs a scale_policy (metric, target_value, cooldown)")
        return self


UPSTREAM_URL = r"^https?://[^\s/?#]+(/[^\s?#]*)?$"


class CreateRoute(Strict):
    """A route to a task group, or (exactly one of the two) to an external upstream."""

    model_name: Annotated[str, Field(pattern=MODEL_NAME)]
    task_group_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    upstream_url: Annotated[str, Field(pattern=UPSTREAM_URL, max_length=2048)] | None = None
    upstream_key: Annotated[str, Field(min_length=1, max_length=1024)] | None = Field(
        default=None, description="the upstream's API key; stored encrypted, never returned")
    upstream_model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    weight: Annotated[int, Field(ge=0, le=100)] = 100
    priority: Annotated[int, Field(ge=0, le=1000)] = 0
    version: Annotated[str, Field(pattern=VERSION)] = "v1"
    algorithm: Algorithm | None = None
    status: Literal["active", "inactive"] = "active"
    first_byte_timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = Field(
        default=None, description="the gateway's bound on an upstream's time to first byte "
                                  "for this route (None: the gateway's default)")

    @model_validator(mode="after")
    def _one_target(self) -> CreateRoute:
        if (self.task_group_id is None) == (self.upstream_url is None):
            raise ValueError("give exactly one of task_group_id (a local service) or "
                             "upstream_url (an external OpenAI-compatible base URL)")
        if self.upstream_url is None and (self.upstream_key or self.upstream_model):
            raise ValueError("upstream_key and upstream_model need upstream_url")
        return self


class UpdateRoute(Strict):
    weight: Annotated[int, Field(ge=0, le=100)] | None = None
    priority: Annotated[int, Field(ge=0, le=1000)] | None = None
    version: Annotated[str, Field(pattern=VERSION)] | None = None
    algorithm: Algorithm | None = None
    status: Literal["active", "inactive"] | None = None
    upstream_url: Annotated[str, Field(pattern=UPSTREAM_URL, max_length=2048)] | None = None
    upstream_key: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    upstream_model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    first_byte_timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = None


class CreateApiKey(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)] = "default"


class CreateUser(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
    role: Role = Role.VIEWER


class CreateToken(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)] = "default"


# ---------------------------------------------------------------- responses


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


class PortOut(Out):
    container: int
    host: int | None


class HealthCheckOut(Out):
    type: str
    path: str
    interval_seconds: int
    timeout_seconds: int
    unhealthy_threshold: int


class TaskOut(Out):
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
    ports: list[dict[str, Any]]
    volumes: list[dict[str, Any]]
    estimated_gpu_memory_mb: int | None
    created_at: datetime | None
    updated_at: datetime | None
    address: str | None = Field(description="host:port of the engine once placed")
    alloc_id: str | None = Field(description="the Nomad allocation running this task")
    node_name: str | None
    sleep_mode: str | None = Field(
        description="while asleep: vllm/sglang (GPU memory released) or paused (kept)")
    gpu_released: bool


class TaskGroupOut(Out):
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
    endpoint: str | None = Field(validation_alias="endpoint_id")
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
    ports: list[PortOut]
    qos: QoS
    estimated_gpu_memory_mb: int | None
    enable_api: bool
    health_check: HealthCheckOut
    scale_policy: dict[str, Any] | None
    co_schedule: dict[str, Any] | None
    schedule_window: dict[str, Any] | None
    created_by: str | None
    created_at: datetime | None
    updated_at: datetime | None
    nomad_job_id: str | None = Field(description="the Nomad job this service became")
    tasks: list[TaskOut]


class RouteOut(Out):
    id: str
    model_name: str
    task_group_id: str | None
    first_byte_timeout_s: float | None = None
    endpoint_id: str | None = Field(
        default=None, description="an external route's endpoint: its API keys are made at "
                                  "/endpoints/{endpoint_id}/api-keys")
    upstream_url: str | None
    upstream_model: str | None
    has_upstream_key: bool
    engine: str | None
    priority: int
    weight: int
    version: str
    algorithm: Algorithm | None
    status: str
    created_at: datetime | None
    updated_at: datetime | None


class EndpointOut(Out):
    id: str
    name: str
    task_group_id: str | None = Field(description="None: the endpoint of an external route")
    protocol: str
    port: int
    algorithm: Algorithm
    health_check: HealthCheckOut
    created_at: datetime | None


class ApiKeyOut(Out):
    id: str
    endpoint_id: str
    name: str
    prefix: str
    active: bool
    created_by: str | None
    created_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewApiKeyOut(ApiKeyOut):
    key: str = Field(description="The key in clear text. Shown once; only its hash is stored.")


class CreatedTaskGroupOut(TaskGroupOut):
    route: RouteOut | None
    inference_endpoint: EndpointOut | None
    api_key: NewApiKeyOut | None


class UserOut(Out):
    id: str
    name: str
    role: Role
    disabled: bool
    created_at: datetime | None


class NewTokenOut(Out):
    id: str
    user_id: str
    name: str
    token: str = Field(description="The token in clear text. Shown once; only its hash is stored.")


class CreatedUserOut(UserOut):
    token: NewTokenOut


class WhoAmIOut(Out):
    user_id: str
    name: str
    role: Role
    token_id: str


class AuditOut(Out):
    id: int
    at: datetime
    actor_id: str | None
    actor_name: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]
    request_id: str | None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. name_taken")
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    error: ErrorBody


# ---------------------------------------------------------------- nodes (agent contract)


class Lenient(BaseModel):
    """Agent reports: strict types, unknown fields refused (the contract tests pin both
    sides), but JSON numbers may be ints or floats as the agent measured them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuIn(Lenient):
    vendor: Annotated[str, Field(min_length=1, max_length=64)]
    index: Annotated[int, Field(ge=0, le=1024)]
    uuid: Annotated[str, Field(max_length=256)]
    name: Annotated[str, Field(max_length=256)]
    memory_total_mb: Annotated[int, Field(ge=0)]
    memory_used_mb: Annotated[int, Field(ge=0)]
    memory_free_mb: Annotated[int, Field(ge=0)]
    utilization_percent: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    driver_version: str | None = None
    pci_bus_id: str | None = None
    healthy: bool = True
    health_reason: str = ""
    compute_capability: str | None = None


class ModelIn(Lenient):
    name: Annotated[str, Field(min_length=1, max_length=512)]
    format: Literal["huggingface", "gguf"]
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    size_bytes: Annotated[int, Field(ge=0)]
    architecture: str | None = None
    parameter_count: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    num_layers: int | None = None
    hidden_size: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    estimated_vram_mb: int | None = None
    vram_explanation: str = ""
    mtime: float = 0.0


class Heartbeat(Lenient):
    node_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,128}$")]
    name: Annotated[str, Field(min_length=1, max_length=255)]
    agent_url: Annotated[str, Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")] | None = None
    agent_secret: Annotated[str, Field(min_length=16, max_length=512)] | None = None
    nomad_node_id: str | None = None
    facts: dict[str, Any] = Field(default_factory=dict)
    gpus: list[GpuIn] = Field(default_factory=list, max_length=1024)
    skipped: dict[str, str] = Field(default_factory=dict)
    engines: list[str] = Field(default_factory=list, max_length=64)
    models: list[ModelIn] | None = Field(default=None, max_length=100_000,
                                         description="null: unchanged since the last report")


class HeartbeatOut(Out):
    node_id: str
    status: str
    interval_seconds: int


class NodeOut(Out):
    id: str
    name: str
    status: str
    status_reason: str
    agent_url: str | None
    nomad_node_id: str | None
    facts: dict[str, Any]
    gpus: list[dict[str, Any]]
    skipped_vendors: dict[str, str]
    engines: list[str]
    model_count: int
    last_heartbeat: datetime
    created_at: datetime


class NodeModelOut(Out):
    node_id: str
    node_name: str
    name: str
    format: str
    path: str
    size_bytes: int
    architecture: str | None = None
    parameter_count: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    estimated_vram_mb: int | None = None
    vram_explanation: str = ""


class TaskStateReport(Lenient):
    """An agent's report of what happened to a task it runs or watches."""

    state: Literal["starting", "running", "sleeping", "failed", "completed", "restarting"]
    reason: Annotated[str, Field(max_length=4000)] = ""
    address: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]-]+:[0-9]{1,5}$")] | None = None
    exit_code: int | None = None
    sleep_mode: Literal["vllm", "sglang", "paused"] | None = None
    gpu_memory_released: bool | None = None


class ScaleRequest(Strict):
    replicas: Annotated[int, Field(ge=1, le=MAX_WORLD_SIZE)]


class UsageOut(Out):
    bucket_start: datetime
    api_key_id: str | None
    route_id: str | None
    model_name: str | None
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
