"""Task states to the bridge, in order, surviving a bridge outage.

Only the newest state of each task matters to the bridge, so a task's unsent report is
replaced by its next one; tasks are sent in the order they changed. A report the bridge
cannot take now is retried with backoff; one it refuses for good (unknown task, a
transition it does not allow) is dropped with a warning, since sending it again would
only be refused again.
"""

from __future__ import annotations

import asyncio
import logging

from agent_plugin.errors import ReportError
from agent_plugin.report.backoff import Backoff
from agent_plugin.report.bridge import BridgeClient
from agent_plugin.report.shapes import TaskStateReport

log = logging.getLogger(__name__)


class TaskStateReporter:
    def __init__(self, bridge: BridgeClient | None, *, retry_first_s: float = 1.0,
                 retry_cap_s: float = 30.0) -> None:
        self._bridge = bridge
        self._pending: dict[str, TaskStateReport] = {}  # insertion order = send order
        self._changed = asyncio.Condition()
        self._backoff = Backoff(retry_first_s, retry_cap_s)
        self.sent = 0

    async def submit(self, task_id: str, report: TaskStateReport) -> None:
        if self._bridge is None:
            return
        async with self._changed:
            self._pending.pop(task_id, None)
            self._pending[task_id] = report
            self._changed.notify_all()

    @property
    def pending(self) -> dict[str, TaskStateReport]:
        return dict(self._pending)

    async def run(self) -> None:
        """Send until cancelled."""
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._pending))
                task_id, report = next(iter(self._pending.items()))
            delay = await self._send(task_id, report)
            if delay:
                await asyncio.sleep(delay)

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every report went out (at shutdown); False if some could not."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: not self._pending)
        except TimeoutError:
            return False
        return True

    async def _send(self, task_id: str, report: TaskStateReport) -> float:
        assert self._bridge is not None
        try:
            await self._bridge.task_state(task_id, report)
        except ReportError as exc:
            if exc.retryable:
                delay = self._backoff.failed()
                log.warning("task state not reported; retrying", extra={
                    "task_id": task_id, "state": report.state, "reason": exc.message,
                    "retry_in_s": delay})
                return delay
            log.warning("task state refused by the bridge; dropped", extra={
                "task_id": task_id, "state": report.state, "reason": exc.message})
        else:
            self._backoff.succeeded()
            self.sent += 1
            log.debug("task state reported", extra={"task_id": task_id, "state": report.state})
        async with self._changed:
            if self._pending.get(task_id) is report:  # not replaced while it was sent
                del self._pending[task_id]
            self._changed.notify_all()
        return 0.0
