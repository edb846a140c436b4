"""Engines as local processes, each the leader of its own process group (a new session), so
a stop or a crash clean-up reaches every process it started (model workers, tokenizer
pools) and none outlives it. Output goes straight from the process into its log file;
nothing in the agent has to pump it.

Each engine starts through a few lines of Python (``_TRAMPOLINE``) that run in the child
before the engine itself: they close every descriptor but the standard three, because the
event loop's spawn (uvloop's) keeps inheritable ones open and the server marks its
listening socket inheritable, so an engine would otherwise hold the API's port after the
server died; and they arm a parent-death signal, so the engine dies with its agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import sys
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
                *_trampoline(spec.argv, env, spec.cwd), env=dict(env), cwd=spec.cwd,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            os.close(log)  # the child has its own copy
        return LocalProcess(process)


# argv: parent pid, then the engine's argv. Linux only for the signal (prctl 1 is
# PR_SET_PDEATHSIG, 9 SIGKILL); if the agent died before it was armed, the engine never starts.
_TRAMPOLINE = """
import os, sys
if sys.platform.startswith("linux"):
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)
    if os.getppid() != int(sys.argv[1]):
        sys.exit(70)
os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)
try:
    os.execv(sys.argv[2], sys.argv[2:])
except OSError as exc:
    sys.stderr.write(f"heteroflow: cannot run {sys.argv[2]}: {exc.strerror}\\n")
    sys.exit(127)
"""


def _trampoline(argv: tuple[str, ...], env: Mapping[str, str], cwd: Path | None) -> list[str]:
    """The command that runs ``argv`` through the trampoline. The program is looked up
    here, so a missing one is an ``OSError`` of the spawn, as it would be without it."""
    program = argv[0]
    if os.sep in program:
        path = Path(cwd or ".", program)
        found = str(path) if path.is_file() and os.access(path, os.X_OK) else None
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)
    # -I -S: no site packages, no user paths: only os, sys and ctypes are needed
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid()), found, *argv[1:]]


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
