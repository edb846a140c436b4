"""The detector registry and ``detect_all``: every enabled detector runs concurrently, and
each vendor either contributes devices or a reason in ``DetectionReport.skipped``. No
detector can fail the whole detection: unexpected errors become reasons too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from agent_plugin.detectors.amd import AmdDetector
from agent_plugin.detectors.ascend import AscendDetector
from agent_plugin.detectors.base import DetectContext, GpuDetector
from agent_plugin.detectors.biren import BirenDetector
from agent_plugin.detectors.cambricon import CambriconDetector
from agent_plugin.detectors.enflame import EnflameDetector
from agent_plugin.detectors.hygon import HygonDetector
from agent_plugin.detectors.iluvatar import IluvatarDetector
from agent_plugin.detectors.kunlunxin import KunlunxinDetector
from agent_plugin.detectors.metax import MetaxDetector
from agent_plugin.detectors.musa import MusaDetector
from agent_plugin.detectors.nvidia import NvidiaDetector
from agent_plugin.detectors.static import StaticDetector
from agent_plugin.detectors.tools import ToolRunner
from agent_plugin.errors import DetectError
from agent_plugin.models import DetectionReport, GpuDevice
from agent_plugin.settings import AgentSettings

log = logging.getLogger(__name__)

DETECTORS: dict[str, GpuDetector] = {
    "nvidia": NvidiaDetector(),
    "amd": AmdDetector(),
    "hygon": HygonDetector(),
    "ascend": AscendDetector(),
    "musa": MusaDetector(),
    "biren": BirenDetector(),
    "cambricon": CambriconDetector(),
    "iluvatar": IluvatarDetector(),
    "metax": MetaxDetector(),
    "enflame": EnflameDetector(),
    "kunlunxin": KunlunxinDetector(),
    "static": StaticDetector(),
}

# A detector may run a few tools in turn (AMD tries three sources); past this many tool
# timeouts it is abandoned, so one stuck vendor library cannot stall the report.
_DEADLINE_TOOL_TIMEOUTS = 4


def context_from_settings(settings: AgentSettings) -> DetectContext:
    return DetectContext(tools=ToolRunner(settings.tool_search_path, settings.tool_timeout_s),
                         sysfs_root=settings.sysfs_root, inventory=settings.gpu_inventory)


def enabled_detectors(settings: AgentSettings) -> list[str]:
    names = list(settings.gpu_vendors)
    return [*names, "static"] if settings.gpu_inventory is not None else names


async def detect_all(ctx: DetectContext, names: Iterable[str],
                     detectors: dict[str, GpuDetector] | None = None) -> DetectionReport:
    registry = DETECTORS if detectors is None else detectors
    chosen = list(dict.fromkeys(names))
    results = await asyncio.gather(*(_run(registry, name, ctx) for name in chosen))
    devices: list[GpuDevice] = []
    skipped: dict[str, str] = {}
    for name, (found, reason) in zip(chosen, results, strict=True):
        devices.extend(found)
        if reason:
            skipped[name] = reason
    return DetectionReport(devices=tuple(devices), skipped=skipped)


async def _run(registry: dict[str, GpuDetector], name: str,
               ctx: DetectContext) -> tuple[list[GpuDevice], str | None]:
    detector = registry.get(name)
    if detector is None:
        return [], f"no detector is registered for {name!r}"
    deadline = ctx.tools.timeout_s * _DEADLINE_TOOL_TIMEOUTS
    try:
        devices = await asyncio.wait_for(detector.detect(ctx), deadline)
    except DetectError as exc:
        reason = exc.message
    except TimeoutError:
        reason = f"detection did not finish within {deadline:g} s"
    except Exception as exc:  # a detector bug must not take the agent down
        log.exception("gpu detector failed", extra={"vendor": name})
        reason = f"detector error: {type(exc).__name__}: {exc}"
    else:
        if devices:
            return devices, None
        reason = "the vendor tool ran but reported no devices"
    log.info("gpu vendor skipped", extra={"vendor": name, "reason": reason})
    return [], reason
