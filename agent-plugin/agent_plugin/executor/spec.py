"""What the executor is asked to run, and what it reports back.

A ``TaskSpec`` comes from the bridge's decision (argv, env, port, GPUs, restart policy); a
``StateChange`` is sent for every transition::

    starting -> running -> (paused <-> running) -> completed        (stopped on request)
        |          |
        +----------+--> restarting -> starting ...                   (crashed, policy allows)
                   +--> failed                                       (crashed, policy spent)

The restart policy follows Nomad's: at most ``attempts`` restarts within ``interval_s``,
``delay_s`` apart; when they are spent, mode "fail" gives up and mode "delay" waits for
the interval to pass and starts counting again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class TaskState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    FAILED = "failed"
    COMPLETED = "completed"


FINAL_STATES = frozenset({TaskState.FAILED, TaskState.COMPLETED})


class RestartMode(StrEnum):
    FAIL = "fail"
    DELAY = "delay"


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    attempts: int = 2  # Nomad's service-job defaults
    delay_s: float = 15.0
    interval_s: float = 1800.0
    mode: RestartMode = RestartMode.FAIL

    def __post_init__(self) -> None:
        if self.attempts < 0 or self.delay_s < 0 or self.interval_s <= 0:
            raise ValueError("restart attempts and delay must be >= 0, interval > 0")

    def next_delay(self, window: deque[float], now: float) -> float | None:
        """Seconds until the next restart, or None to give up. ``window`` holds the times
        of recent restarts (monotonic seconds) and is updated in place."""
        while window and now - window[0] > self.interval_s:
            window.popleft()
        if len(window) < self.attempts:
            window.append(now)
            return self.delay_s
        if self.mode == RestartMode.DELAY and self.attempts > 0:
            wait = max(self.interval_s - (now - window[0]), self.delay_s)
            window.clear()
            window.append(now + wait)
            return wait
        return None


@dataclass(frozen=True, slots=True)
class TaskSpec:
    task_id: str
    argv: tuple[str, ...]
    port: int  # where the engine answers HTTP once it is ready
    log_path: Path  # stdout and stderr, appended across restarts
    env: Mapping[str, str] = field(default_factory=dict)
    gpu_vendor: str | None = None  # None: leave GPU visibility as the agent's environment has it
    gpu_ids: tuple[int | str, ...] = ()  # only these are visible (none when empty)
    restart: RestartPolicy = RestartPolicy()
    cwd: Path | None = None
    host: str = "127.0.0.1"  # where the readiness probe connects
    # probed in order; any answer below 500 means ready (404 too: the server is up)
    ready_paths: tuple[str, ...] = ("/health", "/v1/models")
    startup_timeout_s: float = 600.0  # loading a large model takes minutes

    def __post_init__(self) -> None:
        if not self.task_id:
            raise ValueError("task_id must not be empty")
        if not self.argv:
            raise ValueError("argv must name a program")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a TCP port")
        if self.gpu_ids and self.gpu_vendor is None:
            raise ValueError("gpu_ids need a gpu_vendor to know which variable hides the rest")


@dataclass(frozen=True, slots=True)
class TaskStatus:
    task_id: str
    state: TaskState
    pid: int | None
    port: int
    restarts: int
    exit_code: int | None  # of the last exit, if any
    reason: str  # why it is in this state, in words
    since: float  # when it entered this state, seconds since the epoch

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "state": self.state.value, "pid": self.pid,
                "port": self.port, "restarts": self.restarts, "exit_code": self.exit_code,
                "reason": self.reason, "since": self.since}


@dataclass(frozen=True, slots=True)
class StateChange:
    task_id: str
    state: TaskState
    previous: TaskState | None
    at: float
    pid: int | None
    exit_code: int | None
    reason: str
    log_tail: tuple[str, ...] = ()  # the last log lines, on failures and restarts

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "state": self.state.value,
                "previous": self.previous.value if self.previous else None, "at": self.at,
                "pid": self.pid, "exit_code": self.exit_code, "reason": self.reason,
                "log_tail": list(self.log_tail)}
