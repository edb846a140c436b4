"""What the bridge sends to a node agent's API and reads back: the wire shapes, one class
each. The agent validates what it takes strictly (``agent_plugin/api/schemas.py``); the
contract tests hold the two sides together, field by field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RestartMode = Literal["fail", "delay"]
FINAL_STATES = frozenset({"completed", "failed"})


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    attempts: int = 2
    delay_seconds: float = 5.0
    mode: RestartMode = "fail"

    def to_json(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "delay_seconds": self.delay_seconds,
                "mode": self.mode}


@dataclass(frozen=True, slots=True)
class StartTask:
    """``POST /v1/tasks``: run one engine process with these GPUs, restart it on failure."""

    task_id: str
    argv: tuple[str, ...]
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    gpu_vendor: str | None = None  # None: no GPU, every vendor's devices hidden
    gpu_ids: tuple[str, ...] = ()
    restart: RestartPolicy = RestartPolicy()
    health_path: str = "/health"
    engine: str = ""
    sleep_api: str | None = None  # "vllm" | "sglang": the engine's own sleep endpoints
    idle_timeout_minutes: int = 0  # the agent sleeps the engine after this long idle

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "argv": list(self.argv), "env": dict(self.env),
                "port": self.port, "gpu_vendor": self.gpu_vendor,
                "gpu_ids": list(self.gpu_ids), "restart": self.restart.to_json(),
                "health_path": self.health_path, "engine": self.engine,
                "sleep_api": self.sleep_api, "idle_timeout_minutes": self.idle_timeout_minutes}


@dataclass(frozen=True, slots=True)
class RemoteEngine:
    """``POST /v1/sleep|wake``: an engine Nomad placed on the agent's node, found by address
    or by container."""

    task_id: str
    address: str | None
    sleep_api: str | None
    container: str | None

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "address": self.address,
                "sleep_api": self.sleep_api, "container": self.container}


@dataclass(frozen=True, slots=True)
class SleepAnswer:
    """The agent's answer to a sleep or wake: how the engine sleeps, and whether its GPU
    memory is free for other tasks meanwhile."""

    mode: str | None
    gpu_memory_released: bool
    message: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SleepAnswer:
        return cls(mode=data.get("mode"),
                   gpu_memory_released=bool(data.get("gpu_memory_released")),
                   message=str(data.get("message") or ""))


@dataclass(frozen=True, slots=True)
class AgentTask:
    task_id: str
    state: str


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """``GET /v1/status``: the node and every engine its agent knows (the bridge reads only
    which tasks they are and how they are)."""

    node_id: str
    tasks: tuple[AgentTask, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AgentStatus:
        return cls(node_id=str(data.get("node_id") or ""),
                   tasks=tuple(AgentTask(task_id=str(t["task_id"]), state=str(t.get("state")))
                               for t in data.get("tasks", []) if t.get("task_id")))

    def live_task_ids(self) -> set[str]:
        """Tasks whose engine runs or will run again (neither completed nor failed)."""
        return {t.task_id for t in self.tasks if t.state not in FINAL_STATES}
