"""The engines this agent started, kept in a file in its home so that the next agent on this
machine can find them after a crash.

A parent-death signal ends an engine's main process when its agent dies, but not the
processes that engine started itself (model workers, tokenizer pools), and not an engine
whose agent died in the instant before the signal was armed. So every start and exit is
written down here: the process group, and its leader's start time, which tells an engine
apart from an unrelated process that got the same number later. A starting agent stops
every group the file names that still has live members, then begins with an empty file;
the bridge places the tasks again because the agent no longer reports them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from agent_plugin.executor.local import group_members

log = logging.getLogger(__name__)
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Entry:
    task_id: str
    pgid: int
    started: str  # the leader's start time in clock ticks since boot, "" if unknown
    boot: str  # which boot it ran in, "" if unknown

    def to_json(self) -> dict[str, object]:
        return {"task_id": self.task_id, "pgid": self.pgid, "started": self.started,
                "boot": self.boot}


class Ledger:
    """``engines.json`` under the agent's home; every write replaces the whole file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Entry] = {}

    def started(self, task_id: str, pid: int | None) -> None:
        if pid is None:
            return
        self._entries[task_id] = Entry(task_id, pid, _start_time(pid), _boot_id())
        self._write()

    def ended(self, task_id: str) -> None:
        if self._entries.pop(task_id, None) is not None:
            self._write()

    def stop_leftovers(self, grace_s: float = 10.0) -> list[str]:
        """Stop what an earlier agent left running (SIGTERM, then SIGKILL after
        ``grace_s``); the ids of the tasks that were still running. The file is emptied."""
        left = [e for e in self._read() if _still_ours(e)]
        for entry in left:
            _signal(entry.pgid, signal.SIGTERM)
            _signal(entry.pgid, signal.SIGCONT)  # a paused engine cannot act on SIGTERM
        deadline = time.monotonic() + grace_s
        while any(group_members(e.pgid) for e in left) and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        for entry in left:
            if group_members(entry.pgid):
                _signal(entry.pgid, signal.SIGKILL)
        self._entries.clear()
        self._write()
        if left:
            log.warning("stopped engines an earlier agent left running",
                        extra={"tasks": [e.task_id for e in left]})
        return [e.task_id for e in left]

    def _read(self) -> list[Entry]:
        try:
            data = json.loads(self.path.read_text())
            return [Entry(str(e["task_id"]), int(e["pgid"]), str(e.get("started", "")),
                          str(e.get("boot", ""))) for e in data.get("engines", [])]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("engine ledger unreadable; ignored", extra={"reason": str(exc)})
            return []

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        body = {"engines": [e.to_json() for e in self._entries.values()]}
        partial.write_text(json.dumps(body))
        os.replace(partial, self.path)  # a crash mid-write leaves the old file whole


def _still_ours(entry: Entry) -> bool:
    """Live members in the group, and not a number reused since (another boot, or a leader
    that started at another time). A group's id is not handed out again while any member
    lives, so members of a group whose leader is gone are still the engine's."""
    if entry.pgid <= 1 or (entry.boot and entry.boot != _boot_id()):
        return False
    if not group_members(entry.pgid):
        return False
    now = _start_time(entry.pgid)
    return not (now and entry.started and now != entry.started)


def _start_time(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else ""  # field 22 of stat, counted from state


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _signal(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
