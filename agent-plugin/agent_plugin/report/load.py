"""The node's load figures for the thresholds (heteroflow_contracts/load.py): CPU load as
the 1-minute load average over the CPU count, memory in use from MemAvailable, and the
hottest healthy GPU. Read from /proc each survey; a figure that cannot be read is left out
(it then counts against no node)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from agent_plugin.models import GpuDevice


def load_figures(gpus: Sequence[GpuDevice], proc: Path = Path("/proc"),
                 cpus: int | None = None) -> dict[str, float]:
    figures: dict[str, float] = {}
    try:
        one_minute = float((proc / "loadavg").read_text().split()[0])
        figures["cpu_load_percent"] = round(100 * one_minute / max(1, cpus or os.cpu_count()
                                                                   or 1), 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        info = dict(line.split(":", 1) for line in (proc / "meminfo").read_text().splitlines()
                    if ":" in line)
        total = int(info["MemTotal"].split()[0])
        available = int(info["MemAvailable"].split()[0])
        if total > 0:
            figures["memory_used_percent"] = round(100 * (total - available) / total, 1)
    except (OSError, ValueError, KeyError, IndexError):
        pass
    temperatures = [g.temperature_c for g in gpus if g.healthy and g.temperature_c is not None]
    if temperatures:
        figures["gpu_temperature_c"] = float(max(temperatures))
    return figures
