"""REST shapes of updates and versions (PUT .../update, GET .../versions), apart from
schemas.py so the creation contract and this one change independently."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, field_validator

from bridge.api.schemas import IMAGE, HealthCheckIn, Out, Strict
from bridge.domain.versions import Strategy

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class UpdateTaskGroup(Strict):
    """What to change (absent: keep) and how to roll it out."""

    image: Annotated[str, Field(pattern=IMAGE, max_length=255)] | None = None
    command: Annotated[str, Field(min_length=1, max_length=8192)] | None = None
    engine_args: Annotated[list[Annotated[str, Field(max_length=4096)]],
                           Field(max_length=256)] | None = Field(
        default=None, description="extra engine arguments, after the ones placement builds")
    model_path: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    env: dict[Annotated[str, Field(pattern=_ENV_NAME)],
              Annotated[str, Field(max_length=8192)]] | None = None
    health_check: HealthCheckIn | None = None
    strategy: Strategy = Strategy.ROLLING
    max_parallel: Annotated[int, Field(ge=1, le=512)] = 1
    canary: Annotated[int, Field(ge=0, le=64, description="start only this many new "
                                 "replicas first; promote (or fail) the rollout after")] = 0
    canary_percent: Annotated[int, Field(ge=1, le=99, description="the canaries' share of "
                                         "the service's traffic")] = 10
    healthy_deadline_seconds: Annotated[int, Field(
        ge=10, le=86_400, description="a new replica not healthy by then fails the update "
        "(long enough for a large model to load)")] = 600

    @field_validator("model_path")
    @classmethod
    def _model_path(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if any(c in value for c in "\x00\n\r\t") or not value.startswith("/") \
                or ".." in value.split("/"):
            raise ValueError("model_path must be an absolute path without '..' or control "
                             "characters")
        return value

    @field_validator("engine_args", "command")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        parts = value if isinstance(value, list) else [value] if value else []
        if any("\x00" in p for p in parts):
            raise ValueError("must not contain NUL characters")
        return value


class VersionOut(Out):
    version: int
    spec: dict[str, Any] = Field(description="image, command, engine_args, model_path, env, "
                                             "health_check")
    changes: dict[str, dict[str, Any]] = Field(
        description="what changed from the version before: field -> {from, to}")
    strategy: str = Field(description="initial, rolling, recreate or revert")
    note: str
    created_by: str | None
    created_at: datetime | None


class VersionList(Out):
    items: list[VersionOut]
    current: int
