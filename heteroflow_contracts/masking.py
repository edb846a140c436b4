"""Which log fields hold a secret. Secrets are never handed to a logger; this is the second
guard, shared so that a field masked by one process is masked by all of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

MASK = "***"
# A field whose name contains one of these is masked; key_hash is masked as well, since a
# key's digest is what the gateway looks keys up by.
SECRET_WORDS = ("token", "api_key", "authorization", "password", "secret", "key_hash")
V = TypeVar("V")


def is_secret_field(name: str) -> bool:
    """True for a field that names a secret; ``..._id`` fields name one but hold an id."""
    lowered = name.lower()
    return not lowered.endswith("_id") and any(word in lowered for word in SECRET_WORDS)


def masked(fields: Mapping[str, V]) -> dict[str, V | str]:
    return {key: MASK if is_secret_field(key) else value for key, value in fields.items()}
