"""Hashing and comparing secrets: the bridge's REST tokens and the gateway's API keys.

The bridge stores the digest when it issues a key, the gateway looks keys up by it, so both
must hash the same way. Both secrets are long random strings, so plain SHA-256 is the right
digest: there is no low-entropy password to stretch, and lookups stay index-friendly. Plain
text is never stored; only a short prefix is kept so a person can tell keys apart.
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX_LEN = 11  # "sk-" + 8 hex, or "hft_" + 7 chars


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_prefix(secret: str) -> str:
    return secret[:PREFIX_LEN]


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret against a stored digest."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)
