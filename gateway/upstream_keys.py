"""Decrypting external routes' upstream keys (Fernet tokens written by the bridge).

The Fernet key comes from ``HETEROFLOW_SECRET_KEY`` or the file ``HETEROFLOW_HOME/secret-key``
(urlsafe base64 of 32 bytes), as on the bridge. Clear keys live only in memory, inside the
route snapshot; they are never logged and never leave the process except as the
``Authorization`` header of requests to that upstream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

from cryptography.fernet import Fernet, InvalidToken

from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class KeyUnavailable(Exception):
    """An upstream key cannot be decrypted; the message says why (never the key)."""


class UpstreamKeyBox:
    def __init__(self, fernet: Fernet | None, reason: str = "",
                 material: bytes = b"") -> None:
        self._fernet = fernet
        self._reason = reason
        self._material = material

    def engine_auth(self, task_id: str | None) -> bytes:
        """The Authorization header line for a task's engine (its per-task API key, derived
        from the secret key as the bridge does in ``bridge.crypto.engine_key``); empty
        without a secret key or a task."""
        if not self._material or not task_id:
            return b""
        digest = hmac.new(self._material, b"heteroflow engine key\x00" + task_id.encode(),
                          hashlib.sha256).digest()
        key = b"hfe-" + base64.urlsafe_b64encode(digest).rstrip(b"=")
        return b"Authorization: Bearer " + key + b"\r\n"

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> UpstreamKeyBox:
        if settings.secret_key is not None:
            material = settings.secret_key.get_secret_value().strip()
            where = "HETEROFLOW_SECRET_KEY"
        elif settings.secret_key_file.is_file():
            material = settings.secret_key_file.read_text().strip()
            where = str(settings.secret_key_file)
        else:
            return cls(None, "no secret key: set HETEROFLOW_SECRET_KEY or create "
                             f"{settings.secret_key_file}")
        try:
            return cls(Fernet(material.encode("ascii")), material=material.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return cls(None, f"the secret key in {where} is not a Fernet key "
                             "(urlsafe base64 of 32 bytes)")

    def decrypt(self, token: str) -> str:
        if self._fernet is None:
            raise KeyUnavailable(self._reason)
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise KeyUnavailable("the upstream key was encrypted with another secret key, "
                                 "or is corrupt") from exc
