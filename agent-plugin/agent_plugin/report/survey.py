"""One look at the node for a report: GPUs (every enabled detector), models (an incremental
scan) and usable engines, gathered concurrently and off the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from agent_plugin.detectors import context_from_settings, detect_all, enabled_detectors
from agent_plugin.docker import DockerClient
from agent_plugin.engines import usable_engines
from agent_plugin.models import DetectionReport, ModelInfo
from agent_plugin.report.load import load_figures
from agent_plugin.scanner.scanner import ModelScanner
from agent_plugin.settings import AgentSettings


@dataclass(frozen=True, slots=True)
class Survey:
    detection: DetectionReport
    models: tuple[ModelInfo, ...]
    models_changed: bool  # since the previous survey (the first one counts as a change)
    engines: tuple[str, ...]
    load: dict[str, float] = field(default_factory=dict)  # heteroflow_contracts/load.py


class Surveyor:
    def __init__(self, settings: AgentSettings, docker: DockerClient | None = None,
                 scanner: ModelScanner | None = None) -> None:
        self._context = context_from_settings(settings)
        self._detectors = enabled_detectors(settings)
        self._scanner = scanner or ModelScanner.from_settings(settings)
        self._search_path = settings.tool_search_path
        self._docker = docker
        self._first = True

    async def survey(self) -> Survey:
        detection, scan, engines = await asyncio.gather(
            detect_all(self._context, self._detectors), self._scanner.scan(),
            usable_engines(self._search_path, self._docker))
        changed, self._first = self._first or scan.has_changes, False
        return Survey(detection=detection, models=scan.models, models_changed=changed,
                      engines=tuple(engines), load=load_figures(detection.devices))
