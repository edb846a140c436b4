"""Task states to the bridge, in the order they happened, surviving a bridge outage.

Every transition is sent, in order: the bridge checks each against its state machine
(starting -> sleeping is not a move it accepts, starting -> running -> sleeping is), so
collapsing a task's reports into the newest would make it refuse the newest. A report the
bridge cannot take now is retried with backoff, holding back the ones behind it; one it
refuses for good (unknown task, a transition it does not allow) is dropped with a warning,
since sending it again would only be refused again. A report the bridge fails on itself
(500: not an outage, the bridge could not take this one) is tried ``MAX_FAILED_ATTEMPTS``
times, then dropped the same way, so one bad report cannot hold back every later one of the
node. The queue is bounded: in a very long outage the oldest reports give way.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from agent_plugin.errors import ReportError
from agent_plugin.report.backoff import Backoff
from agent_plugin.report.bridge import BridgeClient
from agent_plugin.report.shapes import TaskStateReport

log = logging.getLogger(__name__)
MAX_PENDING = 10_000
MAX_FAILED_ATTEMPTS = 5
_OUTAGE = frozenset({502, 503, 504})  # the bridge or its database away: wait as long as it takes


class TaskStateReporter:
    def __init__(self, bridge: BridgeClient | None, *, retry_first_s: float = 1.0,
                 retry_cap_s: float = 30.0, max_pending: int = MAX_PENDING) -> None:
        self._bridge = bridge
        self._pending: deque[tuple[str, TaskStateReport]] = deque()
        self._max = max_pending
        self._changed = asyncio.Condition()
        self._backoff = Backoff(retry_first_s, retry_cap_s)
        self.sent = 0
        self.dropped = 0
        self._head_failures = 0  # server errors for the report at the head of the queue

    async def submit(self, task_id: str, report: TaskStateReport) -> None:
        if self._bridge is None:
            return
        async with self._changed:
            if len(self._pending) >= self._max:
                lost, old = self._pending.popleft()
                self.dropped += 1
                log.warning("task state reports overflow; oldest dropped",
                            extra={"task_id": lost, "state": old.state})
            self._pending.append((task_id, report))
            self._changed.notify_all()

    @property
    def pending(self) -> list[tuple[str, TaskStateReport]]:
        return list(self._pending)

    async def run(self) -> None:
        """Send until cancelled."""
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._pending))
                task_id, report = self._pending[0]
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
            status = exc.http_status
            if status is not None and status >= 500 and status not in _OUTAGE:
                self._head_failures += 1
            if exc.retryable and self._head_failures < MAX_FAILED_ATTEMPTS:
                delay = self._backoff.failed()
                log.warning("task state not reported; retrying", extra={
                    "task_id": task_id, "state": report.state, "reason": exc.message,
                    "retry_in_s": delay})
                return delay
            self.dropped += 1
            log.warning("task state refused by the bridge; dropped", extra={
                "task_id": task_id, "state": report.state, "reason": exc.message})
        else:
            self._backoff.succeeded()
            self.sent += 1
            log.debug("task state reported", extra={"task_id": task_id, "state": report.state})
        async with self._changed:
            if self._pending and self._pending[0][1] is report:  # not pushed out meanwhile
                self._pending.popleft()
                self._head_failures = 0
            self._changed.notify_all()
        return 0.0
