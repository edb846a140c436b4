"""REST shapes of PUT .../scale-policy and PUT .../schedule-window, and the policy status
GET /task-groups/{id} shows (docs/policies.md). Requests are strict, as in schemas.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import available_timezones

from pydantic import Field, field_validator, model_validator

from bridge.api.schemas import ALL_DAYS, HHMM, Out, ScaleMetric, Strict, TaskGroupOut, Weekday
from bridge.domain.topology import MAX_WORLD_SIZE
from bridge.domain.windows import cron_problem


class ScalePolicyUpdate(Strict):
    """The whole policy: what is not given takes its default (a PUT, not a patch)."""

    auto_scale: bool
    min_replicas: Annotated[int, Field(ge=1, le=MAX_WORLD_SIZE)] = 1
    max_replicas: Annotated[int, Field(ge=0, le=MAX_WORLD_SIZE,
                                       description="0: no upper limit")] = 0
    metric: ScaleMetric | None = None
    target_value: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    cooldown_seconds: Annotated[int, Field(ge=30, le=86_400)] = 60
    up_delay_seconds: Annotated[int, Field(ge=0, le=86_400, description=(
        "how long the metric must stay above the target; default: the cooldown"))] | None = None
    down_delay_seconds: Annotated[int, Field(ge=0, le=86_400, description=(
        "how long the metric must stay below the target; default 300"))] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> ScalePolicyUpdate:
        if self.max_replicas and self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) is below min_replicas "
                             f"({self.min_replicas}); use 0 for no upper limit")
        if self.auto_scale and (self.metric is None or self.target_value is None):
            raise ValueError("auto_scale true needs metric and target_value")
        return self


class WindowIn(Strict):
    """Weekdays + start/end (HH:MM), or a 5-field cron start + duration_minutes."""

    timezone: str = "UTC"
    days: list[Weekday] = Field(default_factory=lambda: list(ALL_DAYS), min_length=1,
                                max_length=7)
    start: Annotated[str, Field(pattern=HHMM)] | None = None
    end: Annotated[str, Field(pattern=HHMM)] | None = None
    cron: Annotated[str, Field(min_length=9, max_length=200)] | None = None
    duration_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value != "UTC" and value not in available_timezones():
            raise ValueError(f"unknown time zone {value!r} (use an IANA name like Europe/Berlin)")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        problem = cron_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> WindowIn:
        if self.cron is not None:
            if self.duration_minutes is None or self.start or self.end:
                raise ValueError("a cron window has cron and duration_minutes, not start/end")
        elif self.start is None or self.end is None or self.duration_minutes is not None:
            raise ValueError("a window has start and end (HH:MM), or cron and "
                             "duration_minutes")
        elif self.start == self.end:
            raise ValueError("start and end are equal; for all day use 00:00-23:59 or no "
                             "window")
        return self


class ScheduleWindowUpdate(Strict):
    windows: list[WindowIn] = Field(max_length=32, description="empty: always on")
    outside: Literal["sleep", "replicas"] = "sleep"
    outside_replicas: Annotated[int, Field(ge=1, le=MAX_WORLD_SIZE)] | None = None

    @model_validator(mode="after")
    def _outside(self) -> ScheduleWindowUpdate:
        if (self.outside == "replicas") != (self.outside_replicas is not None):
            raise ValueError('outside_replicas is given exactly when outside is "replicas"')
        return self


class PolicyStatusOut(Out):
    decision: str = Field(description="the autoscaler's last decision, or why it did not act")
    decided_at: datetime | None
    last_scaled_at: datetime | None
    window_inside: bool | None
    window_note: str
    next_transition: datetime | None
    idle_note: str


class TaskGroupWithPolicyOut(TaskGroupOut):
    policy: PolicyStatusOut | None = Field(
        default=None, description="what the autoscaler, windows and idle sleep last decided")
