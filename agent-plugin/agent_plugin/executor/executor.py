"""The Executor: runs engines where Nomad does not (the embedded default, tests), supervises
them and reports every state change.

One supervisor coroutine per task: spawn -> wait until the port answers (running), or the
process exits, or the startup timeout passes -> on an exit the restart policy decides
between restarting and failed; a stop request ends in completed. A stop sends SIGTERM to
the engine's whole process group, waits, then SIGKILLs what is left; after any exit the
group is swept, so no process of a task outlives it, and ``shutdown`` stops every task.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from agent_plugin.errors import InvalidTaskState, SpawnFailed, TaskExists, UnknownTask
from agent_plugin.executor.backend import ProcessBackend, RunningProcess
from agent_plugin.executor.ledger import Ledger
from agent_plugin.executor.local import LocalProcessBackend
from agent_plugin.executor.logtail import tail_lines
from agent_plugin.executor.probe import port_in_use, wait_ready
from agent_plugin.executor.record import TaskHandle, TaskRecord
from agent_plugin.executor.spec import (
    FINAL_STATES,
    StateChange,
    TaskSpec,
    TaskState,
    TaskStatus,
)
from agent_plugin.settings import inherited_environment
from heteroflow_contracts.vendors import UnknownVendor, visible_devices_env

log = logging.getLogger(__name__)

StateListener = Callable[[StateChange], Awaitable[None] | None]
_KEEP = object()  # "leave this field as it is"
_SWEEP_S = 5.0  # how long to wait for SIGKILLed stragglers to go
_POLL_S = 0.05


class Executor:
    def __init__(self, *, base_env: Mapping[str, str] | None = None,
                 backend: ProcessBackend | None = None,
                 on_state_change: StateListener | None = None,
                 client: httpx.AsyncClient | None = None, log_tail_lines: int = 20,
                 ledger: Ledger | None = None) -> None:
        self._base_env = dict(base_env) if base_env is not None else inherited_environment()
        self._backend: ProcessBackend = backend or LocalProcessBackend()
        self.on_state_change = on_state_change
        # trust_env off: a proxy from the environment must not sit between us and loopback
        self._client = client or httpx.AsyncClient(trust_env=False)
        self._owns_client = client is None
        self._tail = log_tail_lines
        self._tasks: dict[str, TaskRecord] = {}
        self._ledger = ledger  # where a later agent finds what this one left running

    async def __aenter__(self) -> Executor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    async def start(self, spec: TaskSpec) -> TaskHandle:
        """Start the engine; returns once its process exists (state starting). Raises
        ``SpawnFailed`` when it cannot be started at all, ``TaskExists`` for a live id."""
        current = self._tasks.get(spec.task_id)
        if current is not None and current.state not in FINAL_STATES:
            raise TaskExists(f"task {spec.task_id} is already {current.status().state}")
        try:
            gpus = visible_devices_env(spec.gpu_vendor, spec.gpu_ids) if spec.gpu_vendor else {}
        except UnknownVendor as exc:
            raise SpawnFailed(str(exc)) from None
        if await port_in_use(spec.host, spec.port):
            raise SpawnFailed(f"port {spec.port} on {spec.host} is already in use")
        task = TaskRecord(spec, {**self._base_env, **spec.env, **gpus})
        try:
            process = await self._backend.spawn(spec, task.env, attempt=1)
        except OSError as exc:
            raise SpawnFailed(f"{spec.argv[0]} could not be started: "
                              f"{exc.strerror or exc}") from None
        task.process, task.pid = process, process.pid
        self._tasks[spec.task_id] = task
        # registered before any listener runs, so a stop from a listener finds it
        task.supervisor = asyncio.create_task(self._supervise(task, process),
                                              name=f"executor:{spec.task_id}")
        return TaskHandle(self, spec.task_id)

    def status(self, task_id: str) -> TaskStatus:
        return self._get(task_id).status()

    def statuses(self) -> list[TaskStatus]:
        return [t.status() for t in self._tasks.values()]

    async def wait_for(self, task_id: str, *states: TaskState) -> TaskStatus:
        """Wait until the task's current state is one of ``states`` (bound it with
        ``asyncio.timeout``). A state passed through while nobody waited is not seen: use
        ``on_state_change`` to follow every transition."""
        task = self._get(task_id)
        async with task.changed:
            await task.changed.wait_for(lambda: task.state in states)
        return task.status()

    # ``timeout`` is the grace before SIGKILL, not a deadline for the call
    async def stop(self, task_id: str, timeout: float = 10.0) -> TaskStatus:  # noqa: ASYNC109
        """SIGTERM the task's process group, SIGKILL it after ``timeout``; completed."""
        task = self._get(task_id)
        if task.state not in FINAL_STATES and task.supervisor is not None:
            task.stop_timeout = timeout
            task.stop_requested.set()
            await asyncio.shield(task.supervisor)
        return task.status()

    async def pause(self, task_id: str) -> TaskStatus:
        """Freeze the engine (SIGSTOP): it stops computing but keeps its GPU memory."""
        task = self._get(task_id)
        if task.state != TaskState.RUNNING or task.process is None:
            raise InvalidTaskState(f"task {task_id} is {task.state}; only a running task "
                                   "can be paused")
        task.process.pause()
        await self._set(task, TaskState.PAUSED,
                        reason="paused with SIGSTOP; its GPU memory stays allocated")
        return task.status()

    async def resume(self, task_id: str) -> TaskStatus:
        task = self._get(task_id)
        if task.state != TaskState.PAUSED or task.process is None:
            raise InvalidTaskState(f"task {task_id} is {task.state}; only a paused task "
                                   "can be resumed")
        task.process.resume()
        await self._set(task, TaskState.RUNNING, reason="resumed with SIGCONT")
        return task.status()

    async def logs(self, task_id: str, tail: int = 100) -> list[str]:
        return await asyncio.to_thread(tail_lines, self._get(task_id).spec.log_path, tail)

    async def shutdown(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 (grace)
        """Stop every task (nothing is left running) and release the HTTP client."""
        live = [t.spec.task_id for t in self._tasks.values() if t.state not in FINAL_STATES]
        await asyncio.gather(*(self.stop(task_id, timeout) for task_id in live),
                             return_exceptions=True)
        if self._owns_client:
            await self._client.aclose()

    def _get(self, task_id: str) -> TaskRecord:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise UnknownTask(f"no task {task_id} is known to this executor") from None

    async def _supervise(self, task: TaskRecord, first: RunningProcess) -> None:
        process: RunningProcess | None = first
        attempt = 1
        try:
            await self._attach(task, first, attempt)
            while True:
                outcome = await self._run_once(task, process) if process else \
                    (None, task.reason)
                if outcome is None:
                    await self._set(task, TaskState.COMPLETED, reason="stopped on request")
                    return
                exit_code, why = outcome
                delay = task.spec.restart.next_delay(
                    task.window, asyncio.get_running_loop().time())
                tail = tuple(await asyncio.to_thread(tail_lines, task.spec.log_path,
                                                     self._tail))
                if delay is None:
                    policy = task.spec.restart
                    await self._set(task, TaskState.FAILED, exit_code=exit_code, log_tail=tail,
                                    reason=f"{why}; no restart left ({policy.attempts} "
                                           f"within {policy.interval_s:g} s)")
                    return
                task.restarts += 1
                policy = task.spec.restart
                backing_off = (f" ({policy.attempts} restarts within {policy.interval_s:g} s "
                               "spent: backing off, then trying again)"
                               if delay > policy.delay_s else "")
                await self._set(task, TaskState.RESTARTING, exit_code=exit_code, log_tail=tail,
                                reason=f"{why}; restart {task.restarts} in {delay:g} s"
                                       f"{backing_off}")
                try:
                    await asyncio.wait_for(task.stop_requested.wait(), delay)
                except TimeoutError:
                    pass
                else:
                    await self._set(task, TaskState.COMPLETED, reason="stopped on request")
                    return
                attempt += 1
                process = await self._respawn(task, attempt)
        except asyncio.CancelledError:
            if task.process is not None:
                task.process.kill()
            raise
        except Exception as exc:
            log.exception("task supervision failed", extra={"task_id": task.spec.task_id})
            if task.process is not None:
                task.process.kill()
            await self._set(task, TaskState.FAILED, reason=f"executor error: {exc}")

    async def _run_once(self, task: TaskRecord, process: RunningProcess
                        ) -> tuple[int | None, str] | None:
        """One life of the engine: None when stopped on request, else (exit code, why)."""
        spec = task.spec
        exited = asyncio.ensure_future(process.wait())
        ready = asyncio.ensure_future(
            wait_ready(self._client, spec.host, spec.port, spec.ready_paths))
        stopping = asyncio.ensure_future(task.stop_requested.wait())
        try:
            done, _ = await asyncio.wait({exited, ready, stopping},
                                         timeout=spec.startup_timeout_s,
                                         return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                await self._terminate(task, process, exited)
                return None
            if exited in done:
                await self._sweep(process)
                code = exited.result()
                return code, f"{_exit_words(code)} before answering on port {spec.port}"
            if ready not in done:
                process.kill()
                code = await exited
                await self._sweep(process)
                return code, (f"did not answer on port {spec.port} within "
                              f"{spec.startup_timeout_s:g} s; killed")
            ready.result()  # a probe that broke (not merely unanswered) is an executor error
            await self._set(task, TaskState.RUNNING,
                            reason=f"answering HTTP on port {spec.port}")
            done, _ = await asyncio.wait({exited, stopping},
                                         return_when=asyncio.FIRST_COMPLETED)
            if stopping in done:
                await self._terminate(task, process, exited)
                return None
            await self._sweep(process)
            code = exited.result()
            return code, _exit_words(code)
        finally:
            for waiter in (ready, stopping, exited):
                waiter.cancel()

    async def _terminate(self, task: TaskRecord, process: RunningProcess,
                         exited: asyncio.Future[int]) -> None:
        process.terminate()
        try:
            task.exit_code = await asyncio.wait_for(asyncio.shield(exited), task.stop_timeout)
        except TimeoutError:
            log.warning("task ignored SIGTERM; killing it",
                        extra={"task_id": task.spec.task_id, "timeout_s": task.stop_timeout})
            process.kill()
            task.exit_code = await exited
        await self._sweep(process, grace_s=task.stop_timeout)

    async def _sweep(self, process: RunningProcess, grace_s: float = 0.0) -> None:
        """After the main process exits: give its group ``grace_s`` to follow, then SIGKILL
        whatever remains, so no child is left behind."""
        if await _gone(process, grace_s):
            return
        process.kill()
        if not await _gone(process, _SWEEP_S):
            log.warning("processes of a stopped task did not go", extra={"pid": process.pid})

    async def _respawn(self, task: TaskRecord, attempt: int) -> RunningProcess | None:
        try:
            process = await self._backend.spawn(task.spec, task.env, attempt=attempt)
        except OSError as exc:
            task.reason = f"{task.spec.argv[0]} could not be started: {exc.strerror or exc}"
            return None
        await self._attach(task, process, attempt)
        return process

    async def _attach(self, task: TaskRecord, process: RunningProcess, attempt: int) -> None:
        task.process, task.pid = process, process.pid
        if self._ledger is not None:
            self._ledger.started(task.spec.task_id, process.pid)
        await self._set(task, TaskState.STARTING,
                        reason=f"attempt {attempt}: waiting for HTTP on port {task.spec.port}")

    async def _set(self, task: TaskRecord, state: TaskState, *, reason: str,
                   exit_code: Any = _KEEP, log_tail: tuple[str, ...] = ()) -> None:
        previous, task.state = task.state, state
        task.reason, task.since = reason, time.time()
        if exit_code is not _KEEP:
            task.exit_code = exit_code
        if state in FINAL_STATES and self._ledger is not None:
            self._ledger.ended(task.spec.task_id)
        change = StateChange(task_id=task.spec.task_id, state=state, previous=previous,
                             at=task.since, pid=task.pid, exit_code=task.exit_code,
                             reason=reason, log_tail=log_tail)
        log.info("task state changed", extra={"task_id": change.task_id, "state": state.value,
                                              "previous": previous, "reason": reason})
        async with task.changed:
            task.changed.notify_all()
        if self.on_state_change is None:
            return
        try:
            result = self.on_state_change(change)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("state-change listener failed", extra={"task_id": change.task_id})


async def _gone(process: RunningProcess, within_s: float) -> bool:
    """Poll until no process of the group is left; a group of non-children gives the
    event loop nothing to wait on."""
    for _ in range(max(1, int(within_s / _POLL_S))):
        if not await process.alive():
            return True
        await asyncio.sleep(_POLL_S)
    return not await process.alive()


def _exit_words(code: int | None) -> str:
    if code is None:
        return "could not be started"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"
