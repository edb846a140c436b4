"""Engines as local processes, each the leader of its own process group (a new session), so
a stop or a crash clean-up reaches every process it started (model workers, tokenizer
pools) and none outlives it. Output goes straight from the process into its log file;
nothing in the agent has to pump it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from agent_plugin.executor.spec import TaskSpec


class LocalProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @property
    def pid(self) -> int | None:
        return self._process.pid

    async def wait(self) -> int:
        return await self._process.wait()

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)
        # a stopped process cannot act on SIGTERM until it is continued
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    async def alive(self) -> bool:
        members = await asyncio.to_thread(group_members, self._process.pid)
        if members is not None:
            return bool(members)
        # no /proc: ask the kernel (which also counts zombies as members)
        try:
            os.killpg(self._process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)


class LocalProcessBackend:
    async def spawn(self, spec: TaskSpec, env: Mapping[str, str], attempt: int) -> LocalProcess:
        log = await asyncio.to_thread(_open_log, spec.log_path, spec, attempt)
        try:
            process = await asyncio.create_subprocess_exec(
                *spec.argv, env=dict(env), cwd=spec.cwd, stdin=asyncio.subprocess.DEVNULL,
                stdout=log, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            )
        finally:
            os.close(log)  # the child has its own copy
        return LocalProcess(process)


def group_members(pgid: int) -> list[int] | None:
    """Live (non-zombie) processes of a process group, from /proc; None without /proc.
    Zombies are left out: an orphan's zombie waits for whoever reaps it, and it runs
    nothing."""
    proc = Path("/proc")
    if not (proc / "self").exists():
        return None
    members = []
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue  # exited while we looked
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _open_log(path: Path, spec: TaskSpec, attempt: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    os.write(fd, f"--- heteroflow: task {spec.task_id} attempt {attempt} at {stamp} ---\n"
             .encode())
    return fd
