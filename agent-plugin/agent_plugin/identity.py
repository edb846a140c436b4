"""Who this agent is: a node id that survives restarts, the secret its API requires, and
the node's facts. The id and the secret are made once and kept in the state dir; the
secret file is readable by the agent's user only (0600).

Called once at start, off the event loop (it reads and writes small files).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import re
import secrets
import socket
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_plugin.settings import AgentSettings

log = logging.getLogger(__name__)

NODE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
SECRET_BYTES = 32  # token_urlsafe makes 43 characters of it
_MIN_SECRET_CHARS = 32


@dataclass(frozen=True, slots=True)
class Identity:
    node_id: str
    name: str
    secret: str = ""  # never logged, never in a repr
    facts: tuple[tuple[str, Any], ...] = ()

    def __repr__(self) -> str:
        return f"Identity(node_id={self.node_id!r}, name={self.name!r})"

    def facts_json(self) -> dict[str, Any]:
        return dict(self.facts)


def load_identity(settings: AgentSettings) -> Identity:
    hostname = socket.gethostname()
    name = settings.node_name or hostname
    node_id = settings.node_id or _persisted_node_id(settings.node_id_path, name)
    return Identity(node_id=node_id, name=name, secret=_persisted_secret(settings.secret_path),
                    facts=tuple(node_facts(hostname).items()))


def node_facts(hostname: str) -> dict[str, Any]:
    return {"hostname": hostname, "os": _os_name(), "kernel": platform.release(),
            "cpu_count": os.cpu_count() or 0, "memory_mb": _memory_mb(),
            "python": platform.python_version(), "agent_version": agent_version()}


def agent_version() -> str:
    try:
        return importlib.metadata.version("heteroflow")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"  # run from a source tree that was never installed


def _persisted_node_id(path: Path, name: str) -> str:
    with contextlib.suppress(FileNotFoundError):
        stored = path.read_text().strip()
        if NODE_ID.match(stored):
            return stored
        log.warning("node id file is malformed; making a new id", extra={"path": str(path)})
    # readable in the bridge's node list, unique even for two agents on one host
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:100] or "node"
    node_id = f"{readable}-{uuid.uuid4().hex[:8]}"
    _write_private(path, node_id + "\n", mode=0o644)
    return node_id


def _persisted_secret(path: Path) -> str:
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("agent secret was readable by others; restricting it to 0600",
                        extra={"path": str(path), "mode": oct(mode)})
            path.chmod(0o600)
        stored = path.read_text().strip()
        if len(stored) >= _MIN_SECRET_CHARS:
            return stored
        log.warning("agent secret is too short; making a new one", extra={"path": str(path)})
    secret = secrets.token_urlsafe(SECRET_BYTES)
    _write_private(path, secret + "\n", mode=0o600)
    return secret


def _write_private(path: Path, text: str, *, mode: int) -> None:
    """Write to a fresh temporary file created with ``mode`` (never wider, not even for
    a moment), then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    tmp.replace(path)


def _os_name() -> str:
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        return platform.system()
    return release.get("PRETTY_NAME") or release.get("NAME") or platform.system()


def _memory_mb() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError):
        return 0
