"""AgentSettings read from HETEROFLOW_* variables, and the detection context built from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agent_plugin.detectors import context_from_settings, detect_all, enabled_detectors
from agent_plugin.settings import AgentSettings
from heteroflow_contracts.vendors import VENDORS
from tests.support.agent_helpers import GPU_FIXTURES


class TestAgentSettings:
    def test_environment(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("HETEROFLOW_HOME", str(tmp_path))
        monkeypatch.setenv("HETEROFLOW_MODEL_ROOTS", "/models, /data/llm")
        monkeypatch.setenv("HETEROFLOW_GPU_VENDORS", "NVIDIA,ascend")
        monkeypatch.setenv("PATH", "/usr/bin:/bin")
        settings = AgentSettings()
        assert settings.model_roots == (Path("/models"), Path("/data/llm"))
        assert settings.gpu_vendors == ("nvidia", "ascend")
        assert settings.scan_index_path == tmp_path / "agent" / "scan-index.json"
        search = settings.tool_search_path.split(":")
        assert search[:2] == ["/usr/bin", "/bin"] and "/usr/local/Ascend/driver/tools" in search

    def test_refusals(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HETEROFLOW_GPU_VENDORS", "nvidia,voodoo")
        with pytest.raises(ValidationError, match="voodoo"):
            AgentSettings()
        monkeypatch.delenv("HETEROFLOW_GPU_VENDORS")
        monkeypatch.setenv("HETEROFLOW_MODEL_ROOTS", "relative/models")
        with pytest.raises(ValidationError, match="absolute"):
            AgentSettings()

    async def test_inventory_adds_the_static_detector(self, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
        monkeypatch.setenv("HETEROFLOW_GPU_INVENTORY", str(GPU_FIXTURES / "inventory_dev.json"))
        monkeypatch.setenv("HETEROFLOW_TOOL_PATH", str(tmp_path))  # no vendor tool at all
        monkeypatch.setenv("HETEROFLOW_SYSFS_ROOT", str(tmp_path))
        settings = AgentSettings()
        assert enabled_detectors(settings) == [*VENDORS, "static"]
        report = await detect_all(context_from_settings(settings), ["static", "metax"])
        assert len(report.devices) == 3 and "metax" in report.skipped
