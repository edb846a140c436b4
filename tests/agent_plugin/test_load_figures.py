"""The agent's load figures (agent_plugin/report/load.py) read from a /proc tree, and how
they reach Nomad node metadata (heteroflow_contracts/load.py)."""

from __future__ import annotations

from pathlib import Path

from agent_plugin.models import GpuDevice
from agent_plugin.report.load import load_figures
from agent_plugin.report.nomad_meta import node_meta


def gpu(temperature: float | None, healthy: bool = True) -> GpuDevice:
    return GpuDevice(vendor="amd", index=0, uuid="x", name="MI300X", memory_total_mb=1,
                     memory_used_mb=0, memory_free_mb=1, temperature_c=temperature,
                     healthy=healthy)


def test_figures_from_proc(tmp_path: Path) -> None:
    (tmp_path / "loadavg").write_text("12.00 8.00 4.00 3/900 1234\n")
    (tmp_path / "meminfo").write_text("MemTotal:       1000000 kB\nMemFree:  10 kB\n"
                                      "MemAvailable:    250000 kB\n")
    figures = load_figures([gpu(71), gpu(88, healthy=False), gpu(None)], tmp_path, cpus=16)
    assert figures == {"cpu_load_percent": 75.0, "memory_used_percent": 75.0,
                       "gpu_temperature_c": 71.0}  # the unhealthy GPU's reading is not trusted


def test_unreadable_figures_are_left_out(tmp_path: Path) -> None:
    assert load_figures([], tmp_path) == {}


def test_meta_carries_whole_numbers_and_marks_missing_readings() -> None:
    meta = node_meta([], [], [], {"cpu_load_percent": 75.4, "memory_used_percent": 9.6})
    assert (meta["heteroflow.load.cpu"], meta["heteroflow.load.memory"],
            meta["heteroflow.load.gpu_temp"]) == ("75", "10", "-1")
    assert "heteroflow.load.cpu" not in node_meta([], [], [])
