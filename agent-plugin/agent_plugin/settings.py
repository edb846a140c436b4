"""AgentSettings: the node agent's one typed settings object, read once at start.

This module is the only reader of the environment. Variables share the bridge's
``HETEROFLOW_`` prefix (``HETEROFLOW_MODEL_ROOTS`` means the same folders on both sides);
state files live under ``HETEROFLOW_HOME/agent`` and are derived, not configured. Nomad's
and Docker's own variables (``NOMAD_ADDR``, ``NOMAD_TOKEN``, ``DOCKER_HOST``) are honoured
as their tools define them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from heteroflow_contracts.settings import DEFAULT_MODEL_ROOTS, check_model_roots, split_list
from heteroflow_contracts.vendors import VENDORS

# Where vendor installers put their tools when they are not on PATH (driver packages often
# do not touch PATH, and the agent may run as a service with a minimal one).
VENDOR_TOOL_DIRS = (
    "/usr/local/bin", "/usr/bin", "/opt/rocm/bin", "/opt/hyhal/bin", "/opt/dtk/bin",
    "/usr/local/Ascend/driver/tools", "/usr/local/corex/bin", "/opt/mxdriver/bin",
    "/opt/maca/bin", "/usr/local/neuware/bin", "/usr/local/xpu/bin", "/opt/biren/bin",
    "/usr/local/efsmi", "/usr/local/musa/bin",
)


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HETEROFLOW_", frozen=True, extra="ignore",
                                      populate_by_name=True)

    home: Path = Field(default_factory=lambda: Path.home() / ".heteroflow")
    # HETEROFLOW_MODEL_ROOTS: comma-separated absolute folders the scanner walks
    model_roots: Annotated[tuple[Path, ...], NoDecode] = DEFAULT_MODEL_ROOTS
    # HETEROFLOW_GPU_INVENTORY: a JSON list of devices for machines without a vendor tool
    gpu_inventory: Path | None = None
    # HETEROFLOW_GPU_VENDORS: which hardware detectors run (default: all of them)
    gpu_vendors: Annotated[tuple[str, ...], NoDecode] = VENDORS
    tool_timeout_s: float = Field(default=10.0, gt=0, le=300)
    # HETEROFLOW_TOOL_PATH replaces the search path for vendor tools entirely
    tool_path: str | None = None
    system_path: str = Field(default="", validation_alias=AliasChoices("PATH"))
    sysfs_root: Path = Path("/sys")  # AMD's sysfs fallback reads class/drm below it
    # the context the scanner's own VRAM estimate assumes when a model allows more
    vram_context_cap: int = Field(default=4096, ge=1)

    # -- reporting: the bridge (no reports when unset) and Nomad's node metadata
    bridge_url: str | None = None
    node_token: SecretStr | None = None  # a bridge user token of role "agent"
    node_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$")
    node_name: str | None = None  # default: the hostname
    # None: as often as the bridge's answer says (30 s before its first answer)
    heartbeat_seconds: float | None = Field(default=None, gt=0, le=3600)
    report_retry_seconds: float = Field(default=1.0, gt=0, le=60)  # first retry; doubles
    nomad_addr: str | None = Field(
        default=None, validation_alias=AliasChoices("HETEROFLOW_NOMAD_ADDR", "NOMAD_ADDR"))
    nomad_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("HETEROFLOW_NOMAD_TOKEN", "NOMAD_TOKEN"))
    nomad_node_id: str | None = None  # default: asked from the local Nomad client agent

    # -- the agent's own API, and what it reaches on this node
    agent_listen: str = "127.0.0.1:3334"  # port 0: any free port
    agent_url: str | None = None  # how the bridge reaches the API; default from agent_listen
    # the host in engine addresses reported to the bridge; default: the listen host (the
    # hostname when listening on all interfaces)
    advertise_host: str | None = None
    docker_host: str = Field(
        default="unix:///var/run/docker.sock",
        validation_alias=AliasChoices("HETEROFLOW_DOCKER_HOST", "DOCKER_HOST"))
    idle_poll_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Engines' load metrics for the bridge's autoscaler, sent with the heartbeat.
    engine_metrics_poll_seconds: float = Field(default=10.0, gt=0, le=3600)
    engine_timeout_seconds: float = Field(default=120.0, gt=0)  # sleep/wake calls
    stop_grace_seconds: float = Field(default=10.0, ge=0)  # SIGTERM before SIGKILL
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    _split_roots = field_validator("model_roots", mode="before")(split_list)
    _absolute_roots = field_validator("model_roots")(check_model_roots)

    @field_validator("agent_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_listen(value)
        return value

    @field_validator("bridge_url", "nomad_addr", "agent_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must be an http:// or https:// URL")
        return value.rstrip("/") if value else value

    @field_validator("gpu_vendors", mode="before")
    @classmethod
    def _split_vendors(cls, value: object) -> object:
        return split_list(value, lower=True)

    @field_validator("gpu_vendors")
    @classmethod
    def _known_vendors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [v for v in value if v not in VENDORS]
        if unknown:
            raise ValueError(f"unknown GPU vendors {unknown}; known: {', '.join(VENDORS)}")
        return value

    @property
    def state_dir(self) -> Path:
        return self.home / "agent"

    @property
    def gpu_layout_path(self) -> Path:
        """Which GPUs heteroflow-gpu offers as shares (its ``share_layout`` names this)."""
        return self.state_dir / "gpu-layout.json"

    @property
    def scan_index_path(self) -> Path:
        return self.state_dir / "scan-index.json"

    @property
    def task_log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def node_id_path(self) -> Path:
        return self.state_dir / "node-id"

    @property
    def secret_path(self) -> Path:
        return self.state_dir / "agent-secret"

    @property
    def listen_host(self) -> str:
        return split_listen(self.agent_listen)[0]

    @property
    def listen_port(self) -> int:
        return split_listen(self.agent_listen)[1]

    @property
    def docker_socket(self) -> Path | None:
        """The Docker engine's unix socket; None when DOCKER_HOST names something else."""
        if self.docker_host.startswith("unix://"):
            return Path(self.docker_host[len("unix://"):])
        return None

    @property
    def tool_search_path(self) -> str:
        if self.tool_path is not None:
            return self.tool_path
        entries = [p for p in self.system_path.split(os.pathsep) if p]
        entries += [d for d in VENDOR_TOOL_DIRS if d not in entries]
        return os.pathsep.join(entries)


def split_listen(value: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:3334`` for IPv6) into its parts."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} must be host:port")
    return host, int(port)


def inherited_environment() -> dict[str, str]:
    """The environment engines start from: the agent's own, so PATH, HOME and library paths
    reach them; the executor overlays the task's variables and its visible devices."""
    return dict(os.environ)
