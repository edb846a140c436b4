"""The bodies the agent sends the bridge, with their JSON keys fixed (the contract tests in
``tests/contracts`` check them against the bridge's own schemas): the heartbeat, the
bridge's answer to it, and a task's state report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_plugin._json import (
    ShapeError,
    opt_int,
    opt_str,
    req_int,
    req_list,
    req_object,
    req_str,
)
from agent_plugin.models import GpuDevice, ModelInfo

# The task states the bridge takes; the executor's "paused" is reported as "sleeping".
REPORTED_STATES = ("starting", "running", "sleeping", "failed", "completed", "restarting")
SLEEP_MODES = ("vllm", "sglang", "paused")


@dataclass(frozen=True, slots=True)
class TaskStateReport:
    state: str
    reason: str
    address: str | None = None  # host:port where the engine answers
    exit_code: int | None = None
    sleep_mode: str | None = None  # how it sleeps, when sleeping
    gpu_memory_released: bool | None = None  # whether that sleep freed the GPU memory

    def __post_init__(self) -> None:
        if self.state not in REPORTED_STATES:
            raise ShapeError(f"state must be one of {REPORTED_STATES}, got {self.state!r}")
        if self.sleep_mode is not None and self.sleep_mode not in SLEEP_MODES:
            raise ShapeError(f"sleep_mode must be one of {SLEEP_MODES} or null")

    def to_json(self) -> dict[str, Any]:
        # an engine's log tail may carry NUL bytes, which no database text column takes
        return {"state": self.state, "reason": self.reason.replace("\x00", "\ufffd"),
                "address": self.address,
                "exit_code": self.exit_code, "sleep_mode": self.sleep_mode,
                "gpu_memory_released": self.gpu_memory_released}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskStateReport:
        released = data.get("gpu_memory_released")
        if released is not None and not isinstance(released, bool):
            raise ShapeError("'gpu_memory_released' must be true, false or null")
        return cls(state=req_str(data, "state"), reason=req_str(data, "reason"),
                   address=opt_str(data, "address"), exit_code=opt_int(data, "exit_code"),
                   sleep_mode=opt_str(data, "sleep_mode"), gpu_memory_released=released)


@dataclass(frozen=True, slots=True)
class HeartbeatBody:
    node_id: str
    name: str
    agent_url: str | None
    agent_secret: str | None = field(repr=False)  # sent until the bridge has taken it once
    nomad_node_id: str | None
    facts: Mapping[str, Any]
    gpus: tuple[GpuDevice, ...]
    skipped: Mapping[str, str]  # GPU vendor -> why it contributed no devices
    engines: tuple[str, ...]
    models: tuple[ModelInfo, ...] | None  # None: unchanged since the last report
    # task id -> {"metrics": {common name: value}, "at": unix s} or {"missing": why, "at"}
    # (agent_plugin/engine_metrics.py), for the bridge's autoscaler
    engine_metrics: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        body = {
            "node_id": self.node_id, "name": self.name, "agent_url": self.agent_url,
            "agent_secret": self.agent_secret, "nomad_node_id": self.nomad_node_id,
            "facts": dict(self.facts), "gpus": [g.to_json() for g in self.gpus],
            "skipped": dict(self.skipped), "engines": list(self.engines),
            "models": None if self.models is None else [m.to_json() for m in self.models],
        }
        if self.engine_metrics:  # only then: a node without engines still beats to a bridge
            # that predates the field (it refuses unknown fields)
            body["engine_metrics"] = {k: dict(v) for k, v in self.engine_metrics.items()}
        return body

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeartbeatBody:
        models = data.get("models")
        skipped = req_object(data.get("skipped"), "'skipped'")
        engines = req_list(data, "engines")
        if not all(isinstance(e, str) for e in engines):
            raise ShapeError("'engines' must be a list of names")
        return cls(
            node_id=req_str(data, "node_id"), name=req_str(data, "name"),
            agent_url=opt_str(data, "agent_url"), agent_secret=opt_str(data, "agent_secret"),
            nomad_node_id=opt_str(data, "nomad_node_id"),
            facts=dict(req_object(data.get("facts"), "'facts'")),
            gpus=tuple(GpuDevice.from_json(req_object(g, "a GPU"))
                       for g in req_list(data, "gpus")),
            skipped={str(k): str(v) for k, v in skipped.items()}, engines=tuple(engines),
            models=None if models is None else tuple(
                ModelInfo.from_json(req_object(m, "a model")) for m in req_list(data, "models")),
            engine_metrics={str(k): dict(req_object(v, "an engine reading")) for k, v in
                            req_object(data.get("engine_metrics", {}),
                                       "'engine_metrics'").items()},
        )


@dataclass(frozen=True, slots=True)
class HeartbeatAnswer:
    node_id: str
    status: str
    interval_seconds: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeartbeatAnswer:
        return cls(node_id=req_str(data, "node_id"), status=req_str(data, "status"),
                   interval_seconds=req_int(data, "interval_seconds"))
