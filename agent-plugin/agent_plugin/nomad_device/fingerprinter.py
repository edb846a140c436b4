"""The detection loop behind Fingerprint and Stats: the agent's detectors, run every
fingerprint period (or sooner while a Stats stream asks for a shorter interval) on their
own thread and event loop, since gRPC's handlers are threads.

Fingerprint streams wait for a new version, which is made only when what Nomad is told
changes (devices, health, attributes); Stats streams read the latest readings.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field

from agent_plugin.detectors import DETECTORS, DetectContext, GpuDetector, ToolRunner, detect_all
from agent_plugin.detectors.nvidia import NvidiaDetector
from agent_plugin.errors import LibraryUnavailable
from agent_plugin.models import GpuDevice
from agent_plugin.nomad_device.config import PluginConfig
from agent_plugin.nomad_device.inventory import Group, Inventory, fingerprint_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int  # 0 until the first detection has finished
    groups: tuple[Group, ...]
    devices: dict[str, GpuDevice]  # by Nomad device ID
    taken_at: float = 0.0  # when the tools were read (epoch seconds)
    # a share's device ID -> (K, budget MiB) of its GPU; whole GPUs are absent
    shares: dict[str, tuple[int, int]] = field(default_factory=dict)


class _NoNvml:
    """Stands in for pynvml when the config says ``nvml = false``."""

    def nvmlInit(self) -> None:
        raise LibraryUnavailable("NVML is switched off in the plugin config")


class Fingerprinter:
    def __init__(self, config: PluginConfig) -> None:
        self.config = config
        self._inventory = Inventory(config.sysfs_root)
        self._snapshot = Snapshot(version=0, groups=(), devices={})
        self._key: tuple[object, ...] | None = None
        self._layout: dict[str, int] = dict(config.shares)
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stats_intervals: dict[int, float] = {}
        self._thread = threading.Thread(target=self._run, name="detect", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join(timeout=self.config.tool_timeout_s * 5)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def snapshot(self) -> Snapshot:
        with self._changed:
            return self._snapshot

    def wait_newer(self, version: int, timeout_s: float) -> Snapshot:
        """The snapshot once it is newer than ``version``, or the current one after
        ``timeout_s`` (callers loop, checking whether their stream is still wanted)."""
        with self._changed:
            self._changed.wait_for(lambda: self._snapshot.version > version or self.stopped,
                                   timeout=timeout_s)
            return self._snapshot

    def first_detection_s(self) -> float:
        """How long the first detection may take: every tool may run into its timeout."""
        return self.config.tool_timeout_s * 4 + 1

    def want_stats_every(self, stream: int, interval_s: float | None) -> None:
        """A Stats stream's interval (None when it ends): readings are refreshed at least
        that often while it lasts."""
        if interval_s is None:
            self._stats_intervals.pop(stream, None)
        else:
            self._stats_intervals[stream] = interval_s
            self._wake.set()

    def _period(self) -> float:
        return min([self.config.fingerprint_period_s, *self._stats_intervals.values()])

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            while not self._stop.is_set():
                self._detect_once(loop)
                self._wake.wait(self._period())
                self._wake.clear()
        finally:
            loop.close()

    def _detect_once(self, loop: asyncio.AbstractEventLoop) -> None:
        cfg = self.config
        ctx = DetectContext(tools=ToolRunner(cfg.tool_search_path(), cfg.tool_timeout_s),
                            sysfs_root=cfg.sysfs_root, inventory=cfg.gpu_inventory)
        registry: dict[str, GpuDetector] = dict(DETECTORS)
        if not cfg.nvml:
            registry["nvidia"] = NvidiaDetector(nvml=_NoNvml())  # type: ignore[arg-type]
        taken_at = time.time()
        try:
            report = loop.run_until_complete(detect_all(ctx, cfg.detector_names(), registry))
        except Exception:  # detect_all turns detector failures into reasons; this is a bug
            log.exception("detection failed")
            return
        try:
            layout = cfg.layout()
        except (OSError, ValueError) as exc:  # keep the layout in force; say why
            log.warning("share layout not read: %s", exc)
            layout = self._layout
        with self._changed:
            self._inventory.update(report)
            self._layout = layout
            self._inventory.set_layout(layout)
            groups = self._inventory.groups()
            key = fingerprint_key(groups)
            version = self._snapshot.version
            if key != self._key or version == 0:
                version += 1
                self._key = key
                if report.skipped:
                    log.info("vendors without devices", extra={"skipped": report.skipped})
            devices = {d.uuid: d for d in self._inventory.devices()}
            devices.update(self._inventory.share_devices())
            shares = {i: self._inventory.shares_of(d.uuid) or (1, 0)
                      for i, d in devices.items() if i != d.uuid}
            self._snapshot = Snapshot(version=version, groups=groups, devices=devices,
                                      taken_at=taken_at, shares=shares)
            self._changed.notify_all()
