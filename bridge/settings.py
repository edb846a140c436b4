"""BridgeSettings: the bridge process's one typed settings object, read once at start.

This module is the only reader of the environment (``HETEROFLOW_*``). Paths are derived
from ``HETEROFLOW_HOME`` rather than stored separately.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HETEROFLOW_", frozen=True, extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".heteroflow")
    database_url: str | None = None  # an external PostgreSQL; embedded when unset
    host: str = "127.0.0.1"
    port: int = Field(default=3333, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: str = "INFO"
    log_format: str = "json"  # json | console
    db_pool_min: int = Field(default=1, ge=1)
    db_pool_max: int = Field(default=10, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Where model files may be mounted from (checked by the jobspec renderer).
    model_roots: tuple[Path, ...] = ()

    @property
    def pgdata(self) -> Path:
        return self.home / "pgdata"

    @property
    def admin_token_file(self) -> Path:
        return self.home / "admin-token"


class ClientSettings(BaseSettings):
    """What the CLI's client commands read: where the bridge is and which token to send."""

    model_config = SettingsConfigDict(env_prefix="HETEROFLOW_", frozen=True, extra="ignore")

    addr: str = "http://127.0.0.1:3333"
    token: str | None = None
    home: Path = Field(default_factory=lambda: Path.home() / ".heteroflow")

    def resolved_token(self) -> str | None:
        """The explicit token, else the admin token ``heteroflow up`` saved on this machine."""
        if self.token:
            return self.token
        path = self.home / "admin-token"
        return path.read_text().strip() if path.is_file() else None
