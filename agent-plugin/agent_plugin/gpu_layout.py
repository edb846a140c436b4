"""The node's GPU share layout file ({device ID: K}), which the bridge sets through the agent
and heteroflow-gpu re-reads every fingerprint period (its ``share_layout`` config key names
this file; docs/gpu-sharing.md, "Who changes the layout"). The bridge checks that nothing
holds a GPU before it changes the GPU's form; the agent only validates and writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent_plugin.nomad_device.config import ConfigError, parse_shares


def read_layout(path: Path) -> dict[str, int]:
    if not path.is_file():
        return {}
    return parse_shares(json.loads(path.read_text()), str(path.name))


def write_layout(path: Path, raw: object) -> dict[str, int]:
    """Validate and write atomically (the plugin must never read half a file)."""
    layout = parse_shares(raw, "shares")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp")
    staging.write_text(json.dumps(layout, sort_keys=True))
    os.replace(staging, path)
    return layout


__all__ = ["ConfigError", "read_layout", "write_layout"]
