"""BridgeSettings: the bridge process's one typed settings object, read once at start.

This module is the only reader of the environment (``HETEROFLOW_*``). Paths are derived
from ``HETEROFLOW_HOME`` rather than stored separately.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from heteroflow_contracts.load import LoadLimits
from heteroflow_contracts.settings import DEFAULT_MODEL_ROOTS, check_model_roots, split_list


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
    # Where model files may be mounted from (checked before a jobspec is rendered);
    # HETEROFLOW_MODEL_ROOTS is a comma-separated list of absolute folders.
    model_roots: Annotated[tuple[Path, ...], NoDecode] = DEFAULT_MODEL_ROOTS

    # Nomad placement: on when NOMAD_ADDR is set; the variables are Nomad's own.
    nomad_addr: str | None = Field(default=None, validation_alias=AliasChoices(
        "NOMAD_ADDR", "HETEROFLOW_NOMAD_ADDR"))
    nomad_token: str | None = Field(default=None, validation_alias=AliasChoices(
        "NOMAD_TOKEN", "HETEROFLOW_NOMAD_TOKEN"), repr=False)
    nomad_namespace: str = Field(default="default", validation_alias=AliasChoices(
        "NOMAD_NAMESPACE", "HETEROFLOW_NOMAD_NAMESPACE"))
    nomad_region: str | None = Field(default=None, validation_alias=AliasChoices(
        "NOMAD_REGION", "HETEROFLOW_NOMAD_REGION"))
    nomad_cacert: Path | None = Field(default=None, validation_alias=AliasChoices(
        "NOMAD_CACERT", "HETEROFLOW_NOMAD_CACERT"))
    nomad_client_cert: Path | None = Field(default=None, validation_alias=AliasChoices(
        "NOMAD_CLIENT_CERT", "HETEROFLOW_NOMAD_CLIENT_CERT"))
    nomad_client_key: Path | None = Field(default=None, validation_alias=AliasChoices(
        "NOMAD_CLIENT_KEY", "HETEROFLOW_NOMAD_CLIENT_KEY"))
    nomad_tls_server_name: str | None = Field(default=None, validation_alias=AliasChoices(
        "NOMAD_TLS_SERVER_NAME", "HETEROFLOW_NOMAD_TLS_SERVER_NAME"))
    nomad_skip_verify: bool = Field(default=False, validation_alias=AliasChoices(
        "NOMAD_SKIP_VERIFY", "HETEROFLOW_NOMAD_SKIP_VERIFY"))
    # auto: Nomad when NOMAD_ADDR is set, else this bridge's node agents; none: services are
    # stored but not placed (dry runs, API tests).
    placement: Literal["auto", "none"] = "auto"
    # The reconciler re-reads everything this often, besides following Nomad's events.
    reconcile_resync_seconds: float = Field(default=60.0, ge=1.0)
    # Load thresholds (seed placement step 5): a node above any takes no new replica.
    load_max_cpu_percent: float = Field(default=90.0, gt=0)
    load_max_memory_percent: float = Field(default=90.0, gt=0)
    load_max_gpu_temperature_c: float = Field(default=85.0, gt=0)
    # Which Nomad datacenters inference jobs may use (globs allowed).
    datacenters: Annotated[tuple[str, ...], NoDecode] = ("*",)

    _split_lists = field_validator("model_roots", "datacenters", mode="before")(split_list)
    _absolute_roots = field_validator("model_roots")(check_model_roots)

    # Fernet key for secrets the bridge reads back; default: HETEROFLOW_HOME/secret-key.
    secret_key: str | None = Field(default=None, repr=False)
    # A node is offline after this long without a heartbeat (agents beat every 30 s).
    node_offline_seconds: int = Field(default=90, ge=5)

    # The policy loop (autoscaler, windows, idle sleep; docs/policies.md): one round this
    # often, the metric averaged over the window, gateway counters older than fresh ignored.
    autoscale_interval_seconds: float = Field(default=10.0, ge=0.1, le=600)
    autoscale_window_seconds: float = Field(default=30.0, ge=0, le=3600)
    signals_fresh_seconds: float = Field(default=10.0, ge=1, le=600)
    # A replica being scaled away gets no new requests and this long to finish its streams.
    scale_down_drain_seconds: float = Field(default=300.0, ge=0, le=86_400)

    @property
    def local_models(self) -> Path:
        """Models of the one-machine default (the demo model is put here)."""
        return self.home / "models"

    @property
    def local_model_roots(self) -> tuple[Path, ...]:
        return (*self.model_roots, self.local_models)

    @property
    def secret_key_file(self) -> Path:
        return self.home / "secret-key"

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


def load_limits(settings: BridgeSettings) -> LoadLimits:
    return LoadLimits(cpu_percent=settings.load_max_cpu_percent,
                      memory_percent=settings.load_max_memory_percent,
                      gpu_temperature_c=settings.load_max_gpu_temperature_c)
