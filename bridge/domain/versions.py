"""Versions of a service and the rollout from one to the next (issue 11).

A version is what the engines run: image, command, engine arguments, model path,
environment and health check. Everything else of a group (GPUs, replicas, routes) is not
versioned: changing it is a scale or a route edit, not an update.

rolling_update_state (the seed's column)::

    idle -> rolling -> completed
               |
               v
            failed -> rollback      (the new version failed its health check: the group goes
                                     back to the version it came from, by itself)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from bridge.domain.models import HealthCheck, TaskGroup


class Strategy(StrEnum):
    ROLLING = "rolling"  # new replicas beside the old ones, max_parallel at a time
    RECREATE = "recreate"  # stop every replica, then start them all on the new version


@dataclass(frozen=True, slots=True)
class VersionSpec:
    image: str
    command: str | None
    engine_args: tuple[str, ...]
    model_path: str
    env: dict[str, str]
    health_check: HealthCheck

    def as_json(self) -> dict[str, Any]:
        return {"image": self.image, "command": self.command,
                "engine_args": list(self.engine_args), "model_path": self.model_path,
                "env": dict(self.env), "health_check": asdict(self.health_check)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VersionSpec:
        return cls(image=data["image"], command=data.get("command"),
                   engine_args=tuple(data.get("engine_args") or ()),
                   model_path=data["model_path"], env=dict(data.get("env") or {}),
                   health_check=HealthCheck(**data["health_check"]))


@dataclass(frozen=True, slots=True)
class ServiceVersion:
    group_id: str
    version: int
    spec: VersionSpec
    changes: dict[str, dict[str, Any]]  # field -> {"from": old, "to": new}
    strategy: str  # initial | rolling | recreate | revert
    note: str
    created_by: str | None = None
    created_at: Any = None


@dataclass(frozen=True, slots=True)
class Rollout:
    """One rollout from ``from_version`` to the group's version."""

    strategy: Strategy
    max_parallel: int
    replicas: int  # how many replicas end on the new version
    from_version: int
    to_version: int
    healthy_deadline_s: float  # a new replica not healthy by then fails the rollout
    reason: str = ""  # why it failed, why it could not surge, what it fell back to
    surge: bool = True  # False: no room for extra replicas, so stop then start
    abandoned: bool = False  # an operator failed it: roll back (POST .../rollout/fail)
    canary: int = 0  # first only this many new replicas, beside all the old ones
    canary_percent: int = 10  # the share of the group's traffic the gateway gives them
    promoted: bool = False  # the canaries held: replace the rest (POST .../rollout/promote)

    @property
    def in_canary(self) -> bool:
        return self.canary > 0 and not self.promoted
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"strategy": self.strategy.value, "max_parallel": self.max_parallel,
                "replicas": self.replicas, "from_version": self.from_version,
                "to_version": self.to_version, "healthy_deadline_s": self.healthy_deadline_s,
                "reason": self.reason, "surge": self.surge, "notes": list(self.notes),
                "abandoned": self.abandoned, "canary": self.canary,
                "canary_percent": self.canary_percent, "promoted": self.promoted}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Rollout:
        return cls(strategy=Strategy(data["strategy"]), max_parallel=int(data["max_parallel"]),
                   replicas=int(data["replicas"]), from_version=int(data["from_version"]),
                   to_version=int(data["to_version"]),
                   healthy_deadline_s=float(data.get("healthy_deadline_s", 600)),
                   reason=str(data.get("reason", "")), surge=bool(data.get("surge", True)),
                   notes=list(data.get("notes") or []),
                   abandoned=bool(data.get("abandoned", False)),
                   canary=int(data.get("canary", 0)),
                   canary_percent=int(data.get("canary_percent", 10)),
                   promoted=bool(data.get("promoted", False)))


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """PUT .../update: the fields to change (None: keep) and how to roll them out."""

    image: str | None = None
    command: str | None = None
    engine_args: tuple[str, ...] | None = None
    model_path: str | None = None
    env: dict[str, str] | None = None
    health_check: HealthCheck | None = None
    strategy: Strategy = Strategy.ROLLING
    max_parallel: int = 1
    healthy_deadline_s: float = 600.0
    canary: int = 0
    canary_percent: int = 10

    def applied_to(self, spec: VersionSpec) -> VersionSpec:
        return VersionSpec(
            image=self.image if self.image is not None else spec.image,
            command=self.command if self.command is not None else spec.command,
            engine_args=(self.engine_args if self.engine_args is not None
                         else spec.engine_args),
            model_path=self.model_path if self.model_path is not None else spec.model_path,
            env=self.env if self.env is not None else spec.env,
            health_check=self.health_check or spec.health_check)


def diff(old: VersionSpec, new: VersionSpec) -> dict[str, dict[str, Any]]:
    """What changed from ``old`` to ``new``, field by field (the versions list shows it)."""
    a, b = old.as_json(), new.as_json()
    return {k: {"from": a[k], "to": b[k]} for k in a if a[k] != b[k]}


def spec_of(group: TaskGroup) -> VersionSpec:
    return VersionSpec(image=group.image, command=group.command,
                       engine_args=group.engine_args, model_path=group.model_path,
                       env=dict(group.env), health_check=group.health_check)
