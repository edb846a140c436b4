"""The last lines of a task's log, read from the end so a large log costs no more than
the lines asked for."""

from __future__ import annotations

import os
from pathlib import Path

_BLOCK = 64 * 1024
_MAX_BYTES = 16 * 1024 * 1024  # never read more than this, however long the lines


def tail_lines(path: Path, count: int) -> list[str]:
    if count <= 0:
        return []
    try:
        with path.open("rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            data = b""
            position = end
            while position > 0 and data.count(b"\n") <= count and end - position < _MAX_BYTES:
                step = min(_BLOCK, position)
                position -= step
                fh.seek(position)
                data = fh.read(step) + data
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if position > 0 and lines:
        lines = lines[1:]  # the first line was cut by the block boundary
    return lines[-count:]
