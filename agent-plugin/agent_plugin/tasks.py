"""NodeTasks: the engines this agent runs, with what the executor does not know about them
(engine, sleep API, idle timeout, whether they sleep), and every state change reported to
the bridge.

Who reports what: executor transitions (starting, running, restarting, failed, completed)
are reported from its listener. Falling asleep is reported here when the agent decided it
itself (idle auto-sleep); a sleep or wake the bridge asked for through the API is reported
by the API's answer only, because the bridge records that change itself and a
second report racing its compare-and-set would make it refuse its own move. The executor's
paused/resumed transitions are never reported: they are a sleep's means, not a state of
their own. A task that restarts or stops is awake by definition.

    running --sleep--> sleeping (vllm | sglang: GPU memory released; paused: kept)
    sleeping --wake--> running
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from agent_plugin.docker import DockerClient
from agent_plugin.errors import InvalidTaskState
from agent_plugin.executor import Executor, StateChange, TaskSpec, TaskState, TaskStatus
from agent_plugin.executor.ledger import Ledger
from agent_plugin.executor.spec import FINAL_STATES
from agent_plugin.lifecycle import Sleepers, SleepOutcome, SleepTarget
from agent_plugin.report.shapes import TaskStateReport
from agent_plugin.report.task_states import TaskStateReporter

log = logging.getLogger(__name__)
_TAIL_IN_REASON = 3  # log lines carried in a failure's reason
_REASON_MAX = 2000


@dataclass(frozen=True, slots=True)
class TaskMeta:
    engine: str = ""
    sleep_api: str | None = None  # "vllm" | "sglang"; None: pause
    idle_timeout_minutes: int = 0  # 0: never sleeps by itself


@dataclass(frozen=True, slots=True)
class Asleep:
    mode: str
    gpu_memory_released: bool
    message: str
    since: float  # seconds since the epoch

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "gpu_memory_released": self.gpu_memory_released,
                "message": self.message, "since": self.since}


@dataclass(frozen=True, slots=True)
class SleepAnswer:
    task_id: str
    state: str  # "sleeping" | "running"
    mode: str
    gpu_memory_released: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "state": self.state, "mode": self.mode,
                "gpu_memory_released": self.gpu_memory_released, "message": self.message}


@dataclass(frozen=True, slots=True)
class IdleCandidate:
    task_id: str
    meta: TaskMeta
    address: str  # where the agent reaches the engine
    epoch: int  # changes with every start, restart, sleep and wake: idleness starts over


class NodeTasks:
    def __init__(self, *, reporter: TaskStateReporter, client: httpx.AsyncClient,
                 docker: DockerClient | None, advertise_host: str, engine_timeout_s: float,
                 stop_grace_s: float, base_env: Mapping[str, str] | None = None,
                 ledger: Ledger | None = None) -> None:
        self.executor = Executor(base_env=base_env, on_state_change=self._on_change,
                                 client=client, ledger=ledger)
        self._sleepers = Sleepers(client, self.executor, docker, engine_timeout_s)
        self._reporter = reporter
        self._advertise_host = advertise_host
        self._stop_grace_s = stop_grace_s
        self._specs: dict[str, TaskSpec] = {}
        self._meta: dict[str, TaskMeta] = {}
        self._asleep: dict[str, Asleep] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._epochs: defaultdict[str, int] = defaultdict(int)

    async def start(self, spec: TaskSpec, meta: TaskMeta) -> TaskStatus:
        old_spec, old_meta = self._specs.get(spec.task_id), self._meta.get(spec.task_id)
        # known before the executor's first state change reaches the listener
        self._specs[spec.task_id], self._meta[spec.task_id] = spec, meta
        try:
            handle = await self.executor.start(spec)
        except Exception:
            self._specs.pop(spec.task_id, None)
            self._meta.pop(spec.task_id, None)
            if old_spec is not None and old_meta is not None:  # the task that still runs
                self._specs[spec.task_id], self._meta[spec.task_id] = old_spec, old_meta
            raise
        return handle.status()

    async def stop(self, task_id: str) -> TaskStatus:
        return await self.executor.stop(task_id, self._stop_grace_s)

    def statuses_json(self, idle_notes: Mapping[str, str]) -> list[dict[str, Any]]:
        out = []
        for status in self.executor.statuses():
            task_id, meta = status.task_id, self._meta.get(status.task_id, TaskMeta())
            asleep = self._asleep.get(task_id)
            data = status.to_json()
            data.update({
                "state": "sleeping" if asleep else status.state.value,
                "executor_state": status.state.value, "address": self._address(status),
                "engine": meta.engine, "sleep_api": meta.sleep_api,
                "idle_timeout_minutes": meta.idle_timeout_minutes,
                "sleep": asleep.to_json() if asleep else None,
                "idle": idle_notes.get(task_id) or _idle_default(meta, status, asleep)})
            out.append(data)
        return out

    def idle_candidates(self) -> list[IdleCandidate]:
        """Running, awake tasks that may fall asleep by themselves."""
        return [IdleCandidate(s.task_id, self._meta[s.task_id], self._local_address(s.task_id),
                              self._epochs[s.task_id])
                for s in self.executor.statuses()
                if s.state == TaskState.RUNNING and s.task_id not in self._asleep
                and self._meta.get(s.task_id, TaskMeta()).idle_timeout_minutes > 0]

    def running_engines(self) -> list[tuple[str, str | None, str]]:
        """(task id, engine, where the agent reaches it) of each running, awake engine."""
        return [(s.task_id, self._meta.get(s.task_id, TaskMeta()).engine,
                 self._local_address(s.task_id))
                for s in self.executor.statuses()
                if s.state == TaskState.RUNNING and s.task_id not in self._asleep]

    async def sleep(self, task_id: str, why: str = "", *, report: bool = False) -> SleepAnswer:
        """Put a running task to sleep; ``report``: tell the bridge (when it did not ask)."""
        status = self.executor.status(task_id)  # UnknownTask for a stranger
        async with self._locks[task_id]:
            asleep = self._asleep.get(task_id)
            if asleep is not None:
                return SleepAnswer(task_id, "sleeping", asleep.mode, asleep.gpu_memory_released,
                                   f"was already asleep: {asleep.message}")
            status = self.executor.status(task_id)
            if status.state != TaskState.RUNNING:
                raise InvalidTaskState(f"task {task_id} is {status.state}; only a running task "
                                       "can sleep")
            target = SleepTarget(task_id, self._local_address(task_id), local=True)
            driver = self._sleepers.driver(self._meta[task_id].sleep_api, target)
            outcome = await driver.sleep(target)
            reason = f"{why}: {outcome.message}" if why else outcome.message
            self._asleep[task_id] = Asleep(outcome.mode, outcome.gpu_memory_released,
                                           reason, time.time())
            self._epochs[task_id] += 1
            if report:
                await self._report_sleep(task_id, outcome, reason, self._address(status))
        log.info("task asleep", extra={"task_id": task_id, "mode": outcome.mode,
                                       "gpu_memory_released": outcome.gpu_memory_released})
        return SleepAnswer(task_id, "sleeping", outcome.mode, outcome.gpu_memory_released,
                           reason)

    async def wake(self, task_id: str) -> SleepAnswer:
        status = self.executor.status(task_id)
        async with self._locks[task_id]:
            asleep = self._asleep.get(task_id)
            if asleep is None:
                mode = self._meta.get(task_id, TaskMeta()).sleep_api or "paused"
                return SleepAnswer(task_id, status.state.value, mode, False,
                                   f"was not asleep; it is {status.state}")
            target = SleepTarget(task_id, self._local_address(task_id), local=True)
            driver = self._sleepers.driver(self._meta[task_id].sleep_api, target)
            outcome = await driver.wake(target)
            self._asleep.pop(task_id, None)
            self._epochs[task_id] += 1
        log.info("task awake", extra={"task_id": task_id, "mode": outcome.mode})
        return SleepAnswer(task_id, "running", outcome.mode, False, outcome.message)

    async def sleep_remote(self, target: SleepTarget, sleep_api: str | None) -> SleepAnswer:
        """An engine Nomad placed on this node: by its address, or its container."""
        async with self._locks[target.task_id]:
            outcome = await self._sleepers.driver(sleep_api, target).sleep(target)
        return SleepAnswer(target.task_id, "sleeping", outcome.mode,
                           outcome.gpu_memory_released, outcome.message)

    async def wake_remote(self, target: SleepTarget, sleep_api: str | None) -> SleepAnswer:
        async with self._locks[target.task_id]:
            outcome = await self._sleepers.driver(sleep_api, target).wake(target)
        return SleepAnswer(target.task_id, "running", outcome.mode, False, outcome.message)

    async def shutdown(self) -> None:
        await self.executor.shutdown(self._stop_grace_s)

    async def _report_sleep(self, task_id: str, outcome: SleepOutcome, reason: str,
                            address: str | None) -> None:
        await self._reporter.submit(task_id, TaskStateReport(
            state="sleeping", reason=reason, address=address, sleep_mode=outcome.mode,
            gpu_memory_released=outcome.gpu_memory_released))

    async def _on_change(self, change: StateChange) -> None:
        if change.state == TaskState.PAUSED or (
                change.state == TaskState.RUNNING and change.previous == TaskState.PAUSED):
            return  # a sleep's means; the sleep itself is reported, if at all
        self._asleep.pop(change.task_id, None)  # (re)started or gone: awake either way
        self._epochs[change.task_id] += 1
        final = change.state in FINAL_STATES
        reason = change.reason
        if change.log_tail and change.state in (TaskState.FAILED, TaskState.RESTARTING):
            reason += "; last output: " + " | ".join(change.log_tail[-_TAIL_IN_REASON:])
        spec = self._specs.get(change.task_id)
        address = (f"{self._advertise_host}:{spec.port}" if spec and not final else None)
        await self._reporter.submit(change.task_id, TaskStateReport(
            state=change.state.value, reason=reason[:_REASON_MAX], address=address,
            exit_code=change.exit_code if change.state != TaskState.STARTING else None))

    def _address(self, status: TaskStatus) -> str:
        return f"{self._advertise_host}:{status.port}"

    def _local_address(self, task_id: str) -> str:
        spec = self._specs[task_id]
        return f"{spec.host}:{spec.port}"


def _idle_default(meta: TaskMeta, status: TaskStatus, asleep: Asleep | None) -> str:
    if meta.idle_timeout_minutes <= 0:
        return "auto-sleep off (idle_timeout_minutes is 0)"
    if asleep is not None:
        return "asleep"
    if status.state != TaskState.RUNNING:
        return f"auto-sleep waits until the task runs (it is {status.state})"
    return f"auto-sleep after {meta.idle_timeout_minutes} min without requests; not polled yet"
