"""The executor with real processes: the llama.cpp server through start, crash-restart and
stop; failures, startup timeouts, SIGKILL escalation, orphan sweeping, pause/resume."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import sys
from collections import deque
from pathlib import Path

import httpx
import pytest

from agent_plugin.errors import InvalidTaskState, SpawnFailed, TaskExists, UnknownTask
from agent_plugin.executor import (
    Executor,
    RestartMode,
    RestartPolicy,
    StateChange,
    TaskSpec,
    TaskState,
)
from agent_plugin.executor.local import group_members
from tests.support.agent_helpers import settles_in
from tests.support.model_factory import smollm_gguf

S = TaskState
HTTP_SERVER = ("import http.server, sys; http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])),"
               " http.server.SimpleHTTPRequestHandler).serve_forever()")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder:
    """The on_state_change listener: keeps every change and lets a test wait for one."""

    def __init__(self) -> None:
        self.changes: list[StateChange] = []
        self._cond = asyncio.Condition()

    async def __call__(self, change: StateChange) -> None:
        async with self._cond:
            self.changes.append(change)
            self._cond.notify_all()

    async def until(self, task_id: str, state: TaskState, nth: int = 1,
                    within_s: float = 60) -> StateChange:
        def found() -> list[StateChange]:
            return [c for c in self.changes if c.task_id == task_id and c.state == state]

        async with asyncio.timeout(within_s):
            async with self._cond:
                await self._cond.wait_for(lambda: len(found()) >= nth)
        return found()[nth - 1]

    def states(self, task_id: str) -> list[TaskState]:
        return [c.state for c in self.changes if c.task_id == task_id]


def proc_environ(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


def leftovers(*pids: int | None) -> list[int]:
    return [m for pid in pids if pid for m in (group_members(pid) or [])]


@pytest.fixture
async def executor(tmp_path: Path):  # type: ignore[no-untyped-def]
    recorder = Recorder()
    async with Executor(base_env=dict(os.environ), on_state_change=recorder) as ex:
        ex.recorder = recorder  # type: ignore[attr-defined]
        yield ex


def spec(tmp_path: Path, task_id: str, argv: list[str], port: int | None = None,
         **kw: object) -> TaskSpec:
    return TaskSpec(task_id=task_id, argv=tuple(argv), port=port or free_port(),
                    log_path=tmp_path / "logs" / f"{task_id}.log", **kw)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                    reason="the engine is missing: pip install 'llama-cpp-python[server]'")
async def test_llama_cpp_server_start_crash_restart_stop(executor: Executor,
                                                         tmp_path: Path) -> None:
    rec: Recorder = executor.recorder  # type: ignore[attr-defined]
    port = free_port()
    task = spec(tmp_path, "task-llama-r0", [
        sys.executable, "-m", "llama_cpp.server", "--model", str(smollm_gguf()),
        "--host", "127.0.0.1", "--port", str(port), "--model_alias", "smol",
        "--n_ctx", "512"], port=port, env={"HF_TEST_MARK": "yes"}, gpu_vendor="nvidia",
        restart=RestartPolicy(attempts=2, delay_s=0.2))
    handle = await executor.start(task)
    running = await rec.until(task.task_id, S.RUNNING)
    first_pid = running.pid
    assert first_pid is not None
    environ = proc_environ(first_pid)
    assert b"CUDA_VISIBLE_DEVICES=" in environ and b"HF_TEST_MARK=yes" in environ
    async with httpx.AsyncClient(trust_env=False) as client:
        models = (await client.get(f"http://127.0.0.1:{port}/v1/models")).json()
    assert models["data"][0]["id"] == "smol"

    os.kill(first_pid, signal.SIGKILL)  # a crash
    restarting = await rec.until(task.task_id, S.RESTARTING)
    assert restarting.exit_code == -signal.SIGKILL and "SIGKILL" in restarting.reason
    assert any("Uvicorn" in line or "llama" in line.lower() for line in restarting.log_tail)
    again = await rec.until(task.task_id, S.RUNNING, nth=2)
    assert again.pid not in (None, first_pid)
    assert handle.status().restarts == 1

    final = await handle.stop(timeout=10)
    assert final.state == S.COMPLETED
    assert rec.states(task.task_id) == [S.STARTING, S.RUNNING, S.RESTARTING, S.STARTING,
                                        S.RUNNING, S.COMPLETED]
    assert leftovers(first_pid, again.pid) == []
    assert await executor.logs(task.task_id, tail=200)


async def test_crash_loop_fails_with_exit_code_and_log_tail(executor: Executor,
                                                           tmp_path: Path) -> None:
    rec: Recorder = executor.recorder  # type: ignore[attr-defined]
    task = spec(tmp_path, "crashy", ["sh", "-c", "echo booting; echo no model >&2; exit 3"],
                restart=RestartPolicy(attempts=1, delay_s=0.1))
    await executor.start(task)
    failed = await rec.until(task.task_id, S.FAILED)
    assert failed.exit_code == 3 and "exited with status 3" in failed.reason
    assert "no model" in failed.log_tail and "booting" in failed.log_tail
    assert rec.states(task.task_id) == [S.STARTING, S.RESTARTING, S.STARTING, S.FAILED]
    assert executor.status(task.task_id).restarts == 1
    lines = await executor.logs(task.task_id, tail=3)
    assert lines[-1] == "no model"


async def test_startup_timeout_kills_a_silent_engine(executor: Executor,
                                                     tmp_path: Path) -> None:
    rec: Recorder = executor.recorder  # type: ignore[attr-defined]
    task = spec(tmp_path, "silent", ["sleep", "60"], startup_timeout_s=0.5,
                restart=RestartPolicy(attempts=0))
    handle = await executor.start(task)
    pid = handle.status().pid
    failed = await rec.until(task.task_id, S.FAILED)
    assert "did not answer" in failed.reason
    assert leftovers(pid) == []


async def test_stop_escalates_to_sigkill_and_takes_the_children(executor: Executor,
                                                                tmp_path: Path) -> None:
    rec: Recorder = executor.recorder  # type: ignore[attr-defined]
    port = free_port()
    stubborn = ("import signal, subprocess, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                " subprocess.Popen(['sleep', '300']); " + HTTP_SERVER)
    task = spec(tmp_path, "stubborn", [sys.executable, "-c", stubborn, str(port)], port=port)
    handle = await executor.start(task)
    running = await rec.until(task.task_id, S.RUNNING)
    assert len(leftovers(running.pid)) == 2  # the server and its child
    status = await handle.stop(timeout=0.5)
    assert status.state == S.COMPLETED and status.exit_code == -signal.SIGKILL
    assert leftovers(running.pid) == []


async def test_children_of_a_crashed_engine_are_swept(executor: Executor,
                                                      tmp_path: Path) -> None:
    rec: Recorder = executor.recorder  # type: ignore[attr-defined]
    task = spec(tmp_path, "leaky", ["sh", "-c", "sleep 300 & sleep 0.3; exit 5"],
                restart=RestartPolicy(attempts=0))
    handle = await executor.start(task)
    pid = handle.status().pid
    await rec.until(task.task_id, S.FAILED)
    assert leftovers(pid) == []


async def test_pause_and_resume(executor: Executor, tmp_path: Path) -> None:
    rec: Recorder = executor.recorder  # type: ignore[attr-defined]
    port = free_port()
    task = spec(tmp_path, "sleepy", [sys.executable, "-c", HTTP_SERVER, str(port)], port=port)
    await executor.start(task)
    pid = (await rec.until(task.task_id, S.RUNNING)).pid
    with pytest.raises(InvalidTaskState):
        await executor.resume(task.task_id)
    assert (await executor.pause(task.task_id)).state == S.PAUSED
    assert await settles_in(pid, "T")
    assert (await executor.resume(task.task_id)).state == S.RUNNING
    assert await settles_in(pid, "RSD")
    await executor.pause(task.task_id)
    assert (await executor.stop(task.task_id, timeout=5)).state == S.COMPLETED  # while paused
    assert leftovers(pid) == []


async def test_delay_mode_waits_out_the_interval(executor: Executor, tmp_path: Path) -> None:
    rec: Recorder = executor.recorder  # type: ignore[attr-defined]
    task = spec(tmp_path, "delayed", ["sh", "-c", "exit 1"],
                restart=RestartPolicy(attempts=1, delay_s=0.05, interval_s=3.0,
                                      mode=RestartMode.DELAY))
    await executor.start(task)
    await rec.until(task.task_id, S.RESTARTING, nth=2)
    second = [c for c in rec.changes if c.state == S.RESTARTING][1]
    # the rest of the interval (3 s less the moments the first restart took), and it says so
    waited = float(second.reason.split("restart 2 in ")[1].split(" s")[0])
    assert 0.05 < waited <= 3.0, second.reason
    assert "backing off, then trying again" in second.reason
    await rec.until(task.task_id, S.RESTARTING, nth=3)  # and it does try again
    status = await executor.stop(task.task_id)
    assert status.state == S.COMPLETED and S.FAILED not in rec.states(task.task_id)


async def test_shutdown_leaves_nothing_running(tmp_path: Path) -> None:
    rec = Recorder()
    executor = Executor(base_env=dict(os.environ), on_state_change=rec)
    pids = []
    for name in ("one", "two"):
        port = free_port()
        await executor.start(spec(tmp_path, name, [sys.executable, "-c", HTTP_SERVER,
                                                   str(port)], port=port))
        pids.append((await rec.until(name, S.RUNNING)).pid)
    await executor.shutdown(timeout=5)
    assert [s.state for s in executor.statuses()] == [S.COMPLETED, S.COMPLETED]
    assert leftovers(*pids) == []


async def test_refusals_carry_reasons(executor: Executor, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SpawnFailed, match="already in use"):
            await executor.start(spec(tmp_path, "clash", ["true"], port=port))
    with pytest.raises(SpawnFailed, match="acme"):
        await executor.start(spec(tmp_path, "odd", ["true"], gpu_vendor="acme"))
    with pytest.raises(SpawnFailed, match="could not be started"):
        await executor.start(spec(tmp_path, "ghost", ["/nonexistent/engine"]))
    with pytest.raises(UnknownTask):
        executor.status("never")
    port = free_port()
    await executor.start(spec(tmp_path, "dup", [sys.executable, "-c", HTTP_SERVER, str(port)],
                              port=port))
    with pytest.raises(TaskExists):
        await executor.start(spec(tmp_path, "dup", ["true"]))
    with pytest.raises(ValueError, match="gpu_vendor"):
        spec(tmp_path, "bad", ["true"], gpu_ids=(0,))


class TestRestartPolicy:
    def test_fail_mode_counts_restarts_within_the_interval(self) -> None:
        policy = RestartPolicy(attempts=2, delay_s=1, interval_s=10)
        window: deque[float] = deque()
        assert [policy.next_delay(window, t) for t in (0, 1, 2)] == [1, 1, None]
        assert policy.next_delay(window, 11.5) == 1  # the first restart left the window

    def test_delay_mode_waits_for_the_interval_to_end(self) -> None:
        policy = RestartPolicy(attempts=1, delay_s=1, interval_s=10, mode=RestartMode.DELAY)
        window: deque[float] = deque()
        assert policy.next_delay(window, 0) == 1
        assert policy.next_delay(window, 3) == 7

    def test_zero_attempts_never_restarts(self) -> None:
        for mode in RestartMode:
            assert RestartPolicy(attempts=0, mode=mode).next_delay(deque(), 0) is None
