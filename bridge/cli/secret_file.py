"""Secrets the CLI hands to a person through a file only they can read (mode 0600)."""

from __future__ import annotations

import os
from pathlib import Path


def write_secret_file(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.chmod(path, 0o600)  # an older file keeps its mode through O_CREAT
