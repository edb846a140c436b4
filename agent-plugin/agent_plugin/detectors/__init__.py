"""GPU detection: one module per vendor behind ``GpuDetector``, collected in ``registry``."""

from agent_plugin.detectors.base import DetectContext, GpuDetector
from agent_plugin.detectors.registry import (
    DETECTORS,
    context_from_settings,
    detect_all,
    enabled_detectors,
)
from agent_plugin.detectors.tools import ToolRunner

__all__ = ["DETECTORS", "DetectContext", "GpuDetector", "ToolRunner", "context_from_settings",
           "detect_all", "enabled_detectors"]
