"""Running a vendor's command-line tool: found on a configured search path, bounded by a
timeout, killed with its whole process group when it hangs, never blocking the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from agent_plugin.errors import ToolFailed, ToolMissing, ToolTimedOut

_STDERR_TAIL = 300  # characters of stderr kept in a failure reason


@dataclass(frozen=True, slots=True)
class ToolOutput:
    tool: str  # the name that was found
    stdout: str
    stderr: str


class ToolRunner:
    """Runs tools found on ``search_path`` (not the agent's own PATH, so tests and operators
    decide exactly which binaries are trusted)."""

    def __init__(self, search_path: str, timeout_s: float) -> None:
        self.search_path = search_path
        self.timeout_s = timeout_s

    def which(self, *names: str) -> tuple[str, str] | None:
        """The first of ``names`` that exists, as (name, absolute path)."""
        for name in names:
            found = shutil.which(name, path=self.search_path)
            if found:
                return name, found
        return None

    async def run(self, names: str | tuple[str, ...], *args: str,
                  cwd: Path | None = None) -> ToolOutput:
        """Run the first available of ``names`` with ``args``; raise a DetectError whose
        message says what went wrong."""
        candidates = (names,) if isinstance(names, str) else names
        found = self.which(*candidates)
        if found is None:
            raise ToolMissing(f"{' / '.join(candidates)} not found on the tool search path")
        name, path = found
        try:
            proc = await asyncio.create_subprocess_exec(
                path, *args, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise ToolFailed(f"{name} could not be started: {exc.strerror or exc}") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout_s)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            raise ToolTimedOut(f"{name} did not answer within {self.timeout_s:g} s") from None
        finally:
            # a cancelled detection must not leave the tool running
            if proc.returncode is None:
                _kill_group(proc.pid)
                await proc.wait()
        stdout = out.decode("utf-8", "replace")
        stderr = err.decode("utf-8", "replace")
        if proc.returncode != 0:
            detail = (stderr.strip() or stdout.strip())[-_STDERR_TAIL:]
            raise ToolFailed(f"{name} {' '.join(args)} exited with status {proc.returncode}"
                             + (f": {detail}" if detail else ""))
        return ToolOutput(tool=name, stdout=stdout, stderr=stderr)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
