"""The node's CPU use between two heartbeats, from /proc/stat (Linux), for the bridge's
``cpu`` scaling metric; None where there is no /proc/stat (it is then reported missing)."""

from __future__ import annotations

from pathlib import Path

PROC_STAT = Path("/proc/stat")


def _times(path: Path) -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs together."""
    try:
        first = path.read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values) - idle, sum(values)


class CpuMeter:
    def __init__(self, path: Path = PROC_STAT) -> None:
        self._path = path
        self._last = _times(path)

    def percent(self) -> float | None:
        """Use since the previous call (the first call: since the meter was made)."""
        now = _times(self._path)
        last, self._last = self._last, now
        if now is None or last is None or now[1] <= last[1]:
            return None
        return round(100.0 * (now[0] - last[0]) / (now[1] - last[1]), 1)
