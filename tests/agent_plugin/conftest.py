"""Fixtures for the agent tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent_plugin.helpers import ToolBox


@pytest.fixture
def toolbox(tmp_path: Path) -> ToolBox:
    folder = tmp_path / "bin"
    folder.mkdir()
    return ToolBox(folder)
