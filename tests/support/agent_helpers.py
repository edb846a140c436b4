"""Test helpers for the agent: fake vendor tools as real executables on a private search
path, and where the recorded outputs they replay live."""

from __future__ import annotations

import asyncio
import shlex
import stat
from pathlib import Path

from agent_plugin.detectors import DetectContext, ToolRunner

GPU_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gpus"
MODEL_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "models"


class ToolBox:
    """A folder of executable scripts standing in for vendor tools. Each script is a real
    process, so the runner's search, timeout and exit-status handling are exercised."""

    def __init__(self, folder: Path, timeout_s: float = 5.0) -> None:
        self.folder = folder
        self.timeout_s = timeout_s

    def add(self, name: str, *, replay: str | None = None, stdout: str = "",
            stderr: str = "", exit_code: int = 0, sleep_s: float = 0,
            by_args: dict[str, str] | None = None, body: str | None = None) -> Path:
        """``replay``: a fixture file to print; ``by_args``: fixture per argument string
        (e.g. {"info": ..., "info -m": ...}); ``body``: a raw shell script body."""
        lines = ["#!/bin/sh"]
        if body is not None:
            lines.append(body)
        else:
            if sleep_s:
                lines.append(f"sleep {sleep_s}")
            if by_args:
                lines.append('case "$*" in')
                for args, fixture in by_args.items():
                    source = shlex.quote(str(GPU_FIXTURES / fixture))
                    lines.append(f"  {shlex.quote(args)}) cat {source} ;;")
                lines.append("  *) echo \"unexpected arguments: $*\" >&2; exit 64 ;;")
                lines.append("esac")
            if replay:
                lines.append(f"cat {shlex.quote(str(GPU_FIXTURES / replay))}")
            if stdout:
                lines.append(f"printf '%s\\n' {shlex.quote(stdout)}")
            if stderr:
                lines.append(f"printf '%s\\n' {shlex.quote(stderr)} >&2")
            lines.append(f"exit {exit_code}")
        path = self.folder / name
        path.write_text("\n".join(lines) + "\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return path

    def context(self, *, sysfs_root: Path | None = None,
                inventory: Path | None = None) -> DetectContext:
        return DetectContext(tools=ToolRunner(str(self.folder), self.timeout_s),
                             sysfs_root=sysfs_root or self.folder / "no-sysfs",
                             inventory=inventory)


def proc_state(pid: int | None) -> str:
    """The state letter in /proc/PID/stat (R, S, T, Z, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


async def settles_in(pid: int | None, states: str, within_s: float = 5.0) -> str:
    """The process's state once it is one of ``states``, else "": a signal is delivered
    asynchronously, so a stopped process may still show R for a moment."""
    for _ in range(int(within_s / 0.01)):
        if proc_state(pid) in states:
            return proc_state(pid)
        await asyncio.sleep(0.01)
    return ""
