"""Per-task bookkeeping of the executor, and the handle ``Executor.start`` returns."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

from agent_plugin.executor.backend import RunningProcess
from agent_plugin.executor.spec import TaskSpec, TaskState, TaskStatus

if TYPE_CHECKING:  # the executor imports this module; the handle only calls it back
    from agent_plugin.executor.executor import Executor


class TaskRecord:
    """The executor's mutable view of one task; read it through ``status()``."""

    def __init__(self, spec: TaskSpec, env: Mapping[str, str]) -> None:
        self.spec, self.env = spec, env
        self.state: TaskState | None = None  # None until the first state is announced
        self.pid: int | None = None
        self.restarts = 0
        self.exit_code: int | None = None
        self.reason = ""
        self.since = time.time()
        self.process: RunningProcess | None = None
        self.stop_requested = asyncio.Event()
        self.stop_timeout = 10.0
        self.changed = asyncio.Condition()
        self.window: deque[float] = deque()  # loop times of recent restarts
        self.supervisor: asyncio.Task[None] | None = None

    def status(self) -> TaskStatus:
        return TaskStatus(task_id=self.spec.task_id, state=self.state or TaskState.STARTING,
                          pid=self.pid, port=self.spec.port, restarts=self.restarts,
                          exit_code=self.exit_code, reason=self.reason, since=self.since)


class TaskHandle:
    """What ``start`` returns: the task's id and shortcuts to the executor's calls."""

    def __init__(self, executor: Executor, task_id: str) -> None:
        self._executor, self.task_id = executor, task_id

    def status(self) -> TaskStatus:
        return self._executor.status(self.task_id)

    async def wait_for(self, *states: TaskState) -> TaskStatus:
        return await self._executor.wait_for(self.task_id, *states)

    async def stop(self, timeout: float = 10.0) -> TaskStatus:  # noqa: ASYNC109
        return await self._executor.stop(self.task_id, timeout)


