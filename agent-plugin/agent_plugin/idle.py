"""Idle detection: a running task with ``idle_timeout_minutes > 0`` is put to sleep once its
engine has had no running or waiting request for the whole timeout.

Every poll reads the engine's ``/metrics`` (``metrics.IDLE_SIGNALS``). Idleness counts from
the first poll that saw it; a poll that sees a request, or token counters that moved since
the previous poll (requests that came and went in between), starts it over, and so does a
poll that cannot read the metrics: not knowing is not idle. Engines without request metrics
(llama-cpp-python's server) are never put to sleep by this; their status says why.

The clock is injected (monotonic seconds) and ``tick()`` is one poll, so tests drive
hours of idleness without waiting for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from agent_plugin.errors import AgentError, EngineUnreachable, SleepUnsupported
from agent_plugin.metrics import IDLE_SIGNALS, IdleSignal, read_load
from agent_plugin.tasks import IdleCandidate, NodeTasks

log = logging.getLogger(__name__)
Clock = Callable[[], float]


class IdleWatcher:
    def __init__(self, tasks: NodeTasks, client: httpx.AsyncClient, *,
                 clock: Clock = time.monotonic, poll_s: float = 30.0,
                 signals: dict[str, IdleSignal] | None = None) -> None:
        self._tasks, self._client = tasks, client
        self._clock, self._poll_s = clock, poll_s
        self._signals = IDLE_SIGNALS if signals is None else signals
        self._idle_since: dict[str, float] = {}
        self._counters: dict[str, dict[str, float]] = {}
        self._epochs: dict[str, int] = {}
        self.notes: dict[str, str] = {}  # task id -> where its idleness stands, in words

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # one odd engine must not end idle detection for all
                log.exception("idle poll failed")
            await asyncio.sleep(self._poll_s)

    async def tick(self) -> list[str]:
        """Poll every candidate once; the ids of the tasks put to sleep."""
        candidates = self._tasks.idle_candidates()
        current = {c.task_id for c in candidates}
        for task in candidates:  # slept and woke (or restarted) since the last poll
            if self._epochs.get(task.task_id, task.epoch) != task.epoch:
                self._idle_since.pop(task.task_id, None)
                self._counters.pop(task.task_id, None)
            self._epochs[task.task_id] = task.epoch
        for table in (self._idle_since, self._counters, self.notes, self._epochs):
            for task_id in [t for t in table if t not in current]:
                del table[task_id]  # asleep, stopped or restarted: start over when back
        slept = await asyncio.gather(*(self._check(c) for c in candidates))
        return [c.task_id for c, done in zip(candidates, slept, strict=True) if done]

    async def _check(self, task: IdleCandidate) -> bool:
        task_id, minutes = task.task_id, task.meta.idle_timeout_minutes
        signal = self._signals.get(task.meta.engine)
        if signal is None:
            self.notes[task_id] = (f"not auto-slept: no idle signal is known for engine "
                                   f"{task.meta.engine or '(none named)'}")
            return False
        try:
            load = await read_load(self._client, task.address, signal)
        except SleepUnsupported as exc:
            self._idle_since.pop(task_id, None)
            self.notes[task_id] = (f"not auto-slept: {exc.message}; without request metrics "
                                   "idleness cannot be seen")
            return False
        except EngineUnreachable as exc:
            self._idle_since.pop(task_id, None)
            self.notes[task_id] = f"idleness unknown: {exc.message}"
            return False
        now = self._clock()
        before = self._counters.get(task_id, {})
        moved = any(before.get(name, value) != value for name, value in load.counters.items())
        self._counters[task_id] = load.counters
        if load.in_flight > 0 or moved:
            self._idle_since.pop(task_id, None)
            self.notes[task_id] = f"busy: {load.words()}" + (
                "; requests were served since the last poll" if moved else "")
            return False
        since = self._idle_since.setdefault(task_id, now)
        idle_s = now - since
        if idle_s < minutes * 60:
            self.notes[task_id] = f"idle for {idle_s / 60:.1f} of {minutes} min"
            return False
        try:
            await self._tasks.sleep(task_id, why=f"idle for {minutes} min (no running or "
                                                 "waiting requests)", report=True)
        except AgentError as exc:
            self._idle_since[task_id] = now  # try again after another full timeout
            self.notes[task_id] = f"auto-sleep failed: {exc.message}"
            log.warning("idle task not put to sleep", extra={"task_id": task_id,
                                                             "reason": exc.message})
            return False
        self._idle_since.pop(task_id, None)
        self.notes[task_id] = f"put to sleep after {minutes} min without requests"
        return True
