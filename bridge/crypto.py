"""Encryption of the few secrets the bridge must be able to read back (upstream provider
keys of external routes, the credential for calling a node's agent).

Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``; the key comes from
HETEROFLOW_SECRET_KEY or, on the one-machine default, from HETEROFLOW_HOME/secret-key
(created on first start, mode 0600). The gateway decrypts with the same key; nothing
decrypted is ever logged or returned by the API.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from bridge.errors import BridgeError


class SecretBox:
    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key.encode("ascii") if isinstance(key, str) else key

    def engine_key(self, task_id: str) -> str:
        """The API key of one task's engine: derived, not stored, so the gateway (which has
        the same secret key) computes the same one, and a new task gets a new key. Must
        match ``gateway.upstream_keys.UpstreamKeyBox.engine_key``."""
        return engine_key(self._key, task_id)

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise BridgeError("a stored secret cannot be decrypted with this secret key "
                              "(was HETEROFLOW_SECRET_KEY changed?)") from exc


def load_or_create_key(explicit: str | None, key_file: Path) -> str:
    """The configured key, else the one in ``key_file``, else a new one written there."""
    if explicit:
        return explicit
    if key_file.is_file():
        return key_file.read_text().strip()
    key = Fernet.generate_key().decode("ascii")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key


def engine_key(secret: bytes, task_id: str) -> str:
    digest = hmac.new(secret.strip(), b"heteroflow engine key\x00" + task_id.encode(),
                      hashlib.sha256).digest()
    return "hfe-" + base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
