"""AgentSettings: the node agent's one typed settings object, read once at start.

This module is the only reader of the environment. Variables share the bridge's
``HETEROFLOW_`` prefix (``HETEROFLOW_MODEL_ROOTS`` means the same folders on both sides);
state files live under ``HETEROFLOW_HOME/agent`` and are derived, not configured.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent_plugin.models import VENDORS

DEFAULT_MODEL_ROOTS = (Path("/models"), Path("/srv/models"), Path("/data/models"),
                       Path("/mnt/models"))

# Where vendor installers put their tools when they are not on PATH (driver packages often
# do not touch PATH, and the agent may run as a service with a minimal one).
VENDOR_TOOL_DIRS = (
    "/usr/local/bin", "/usr/bin", "/opt/rocm/bin", "/opt/hyhal/bin", "/opt/dtk/bin",
    "/usr/local/Ascend/driver/tools", "/usr/local/corex/bin", "/opt/mxdriver/bin",
    "/opt/maca/bin", "/usr/local/neuware/bin", "/usr/local/xpu/bin", "/opt/biren/bin",
    "/usr/local/efsmi", "/usr/local/musa/bin",
)


class AgentSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HETEROFLOW_", frozen=True, extra="ignore")

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

    @field_validator("model_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("model_roots")
    @classmethod
    def _absolute_roots(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        for root in value:
            if not root.is_absolute() or root == Path("/"):
                raise ValueError(f"model root {root} must be an absolute folder other than /")
        return value

    @field_validator("gpu_vendors", mode="before")
    @classmethod
    def _split_vendors(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip().lower() for v in value.split(",") if v.strip()]
        return value

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
    def scan_index_path(self) -> Path:
        return self.state_dir / "scan-index.json"

    @property
    def task_log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def tool_search_path(self) -> str:
        if self.tool_path is not None:
            return self.tool_path
        entries = [p for p in self.system_path.split(os.pathsep) if p]
        entries += [d for d in VENDOR_TOOL_DIRS if d not in entries]
        return os.pathsep.join(entries)


def inherited_environment() -> dict[str, str]:
    """The environment engines start from: the agent's own, so PATH, HOME and library paths
    reach them; the executor overlays the task's variables and its visible devices."""
    return dict(os.environ)
