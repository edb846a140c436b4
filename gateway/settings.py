"""GatewaySettings: the gateway process's one typed settings object, read once at start.

This module is the only reader of the environment: ``HETEROFLOW_*`` for our own knobs, and
Consul's own conventions (``CONSUL_HTTP_ADDR``, ``CONSUL_HTTP_TOKEN``) for the agent to watch.
Durations are seconds (floats), sizes bytes.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HETEROFLOW_", frozen=True, extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".heteroflow")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=3333, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: str = "INFO"
    log_format: str = "json"  # json | console
    access_log: bool = False
    # Pending connections the kernel holds before accept (capped by net.core.somaxconn).
    # Sanic's default of 100 drops SYNs when a few hundred streams open at once; the client
    # retransmits after 1 s, then 3 s: seconds added to time to first token (bench/streams.py).
    backlog: int = Field(default=4096, ge=16, le=65535)

    # The bridge, for wake-on-request; the token is the gateway's bearer token there.
    bridge_url: str = "http://127.0.0.1:3333"
    gateway_token: SecretStr | None = None
    # Fernet key for upstream keys of external routes; else HETEROFLOW_HOME/secret-key.
    secret_key: SecretStr | None = None

    # Consul: set means "backends come from Consul health"; unset means the embedded default.
    consul_http_addr: str | None = Field(
        default=None, validation_alias=AliasChoices("CONSUL_HTTP_ADDR", "HETEROFLOW_CONSUL_ADDR"))
    consul_http_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CONSUL_HTTP_TOKEN",
                                                    "HETEROFLOW_CONSUL_TOKEN"))
    consul_wait_s: float = Field(default=30.0, ge=1.0, le=600.0)

    # Limits: every per-request structure is bounded by one of these.
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_inflight: int = Field(default=8192, ge=1)  # per worker
    key_max_inflight: int = Field(default=0, ge=0)  # per key and worker; 0 = no limit
    max_attempts: int = Field(default=3, ge=1, le=10)
    upstream_max_connections: int = Field(default=8192, ge=1)
    upstream_max_connections_per_host: int = Field(default=1024, ge=1)
    upstream_idle_timeout_s: float = Field(default=30.0, gt=0)

    # Timeouts.
    connect_timeout_s: float = Field(default=3.0, gt=0)
    upstream_timeout_s: float = Field(default=600.0, gt=0)  # to first byte, and between bytes
    # To the first byte of an answer (a stream's first chunk), unless the route sets its own;
    # generous, as a long prompt on a slow engine takes long before its first token. Never
    # more than upstream_timeout_s. Past it the attempt is retried on the next backend.
    first_byte_timeout_s: float = Field(default=300.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)  # a client's time to send its request
    keep_alive_timeout_s: float = Field(default=30.0, gt=0)

    # Health and change propagation.
    refresh_interval_s: float = Field(default=1.0, gt=0, le=60)  # routes/tasks from the database
    key_recheck_interval_s: float = Field(default=1.0, gt=0, le=60)  # revocation takes effect
    key_cache_size: int = Field(default=100_000, ge=16)
    cooldown_s: float = Field(default=5.0, ge=0)
    failures_before_cooldown: int = Field(default=3, ge=1)
    # A backend whose health probe times out stays in while a real request to it succeeded
    # this recently: busy is not dead.
    busy_grace_s: float = Field(default=15.0, ge=0)

    # Wake on request.
    wake_timeout_s: float = Field(default=60.0, gt=0)
    max_held_requests: int = Field(default=256, ge=0)
    wake_retry_s: float = Field(default=10.0, gt=0)  # ask again if still asleep after this

    # Usage accounting.
    usage_flush_interval_s: float = Field(default=5.0, gt=0)
    usage_max_pending: int = Field(default=50_000, ge=1)
    # Per-service load for the bridge's autoscaler (gateway/signals.py).
    signals_interval_s: float = Field(default=2.0, gt=0, le=60)

    @property
    def secret_key_file(self) -> Path:
        return self.home / "secret-key"

    @property
    def metrics_dir(self) -> Path:
        """Where the workers of this gateway (one per port) share their metrics."""
        return self.home / "run" / f"gateway-{self.port}-metrics"

    @property
    def uses_consul(self) -> bool:
        return bool(self.consul_http_addr)
