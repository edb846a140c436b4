"""The scan index: for every model path, the sizes and mtimes of its files when it was last
described, and what it was described as (or why it could not be). A rescan compares
fingerprints and re-reads only models whose files changed.

Persisted as one JSON file (written to a temporary name, then renamed, so a crash leaves
the old index); an unreadable or foreign index is discarded and the next scan rebuilds it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_plugin._json import ShapeError, req_object
from agent_plugin.models import ModelInfo

log = logging.getLogger(__name__)

INDEX_VERSION = 1
Fingerprint = tuple[tuple[str, int, int], ...]  # (file, size, mtime_ns) per file


@dataclass(frozen=True, slots=True)
class IndexEntry:
    fingerprint: Fingerprint
    info: ModelInfo | None  # None: not servable, see ``reason``
    reason: str = ""


def load_index(path: Path | None, *, context_cap: int) -> dict[str, IndexEntry]:
    if path is None or not path.exists():
        return {}
    try:
        document = json.loads(path.read_text())
        if document.get("version") != INDEX_VERSION:
            raise ShapeError(f"index version {document.get('version')!r}")
        if document.get("vram_context_cap") != context_cap:
            # estimates were made for another context; re-describe everything once
            raise ShapeError("the VRAM context cap changed")
        entries = req_object(document.get("entries"), "'entries'")
        return {p: _entry(req_object(e, "an entry")) for p, e in entries.items()}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("scan index discarded", extra={"path": str(path), "reason": str(exc)})
        return {}


def save_index(path: Path, entries: dict[str, IndexEntry], *, context_cap: int) -> None:
    document = {
        "version": INDEX_VERSION, "vram_context_cap": context_cap,
        "entries": {p: {"fingerprint": [list(f) for f in e.fingerprint],
                        "info": e.info.to_json() if e.info else None, "reason": e.reason}
                    for p, e in entries.items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, separators=(",", ":")))
    tmp.replace(path)


def _entry(data: Any) -> IndexEntry:
    fingerprint = tuple((str(name), int(size), int(mtime))
                        for name, size, mtime in data["fingerprint"])
    info = data.get("info")
    return IndexEntry(fingerprint=fingerprint,
                      info=ModelInfo.from_json(info) if info is not None else None,
                      reason=str(data.get("reason", "")))
