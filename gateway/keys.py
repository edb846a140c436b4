"""API keys: SHA-256 digests looked up in the bridge's table, cached in a bounded LRU.

The hot path hashes the presented key and reads the cache; only a digest never seen before
goes to the database (concurrent misses for one digest share one query, and misses overall
are capped so garbage keys cannot flood the database). Revocation reaches the cache through
a background recheck: each ``key_recheck_interval_s`` a one-row fingerprint of the table is
read, and when it moved, every cached digest is revalidated in one query. Keys and digests
are never logged. Every lookup is by digest, never by the key, so lookup timing tells an
attacker nothing about a valid key; the digest read back is still compared in constant time.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import OrderedDict

import psycopg
from psycopg_pool import PoolTimeout

from gateway.domain import KeyGrant
from gateway.errors import KeyStoreUnavailable, Unauthorized
from gateway.store import Store
from heteroflow_contracts.credentials import hash_secret

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 256
_MISSES_AT_ONCE = 8


class KeyCache:
    def __init__(self, store: Store, *, max_entries: int) -> None:
        self._store = store
        self._max = max_entries
        # digest -> grant, or None for "no such key" (also cached, also rechecked)
        self._entries: OrderedDict[str, KeyGrant | None] = OrderedDict()
        self._pending: dict[str, asyncio.Future[KeyGrant | None]] = {}
        self._miss_gate = asyncio.Semaphore(_MISSES_AT_ONCE)
        self._fingerprint: tuple[object, ...] | None = None

    async def authorize(self, header: str | None) -> KeyGrant:
        """The grant of the bearer key in an ``Authorization`` header, or ``Unauthorized``."""
        if not header:
            raise Unauthorized("missing API key: send 'Authorization: Bearer sk-...'")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise Unauthorized("malformed Authorization header: expected 'Bearer sk-...'")
        if len(key) > MAX_KEY_LENGTH or not key.isascii():
            raise Unauthorized("invalid API key")
        digest = hash_secret(key)
        entries = self._entries
        if digest in entries:
            grant = entries[digest]
            entries.move_to_end(digest)
        else:
            grant = await self._miss(digest)
        if grant is None:
            raise Unauthorized("invalid or revoked API key")
        return grant

    async def recheck(self) -> bool:
        """Revalidate every cached digest if the keys table changed; True if it had."""
        fingerprint = await self._store.keys_fingerprint()
        if fingerprint == self._fingerprint:
            return False
        digests = list(self._entries)
        valid = await self._store.find_keys(digests) if digests else {}
        for digest in digests:
            if digest in self._entries:
                self._entries[digest] = valid.get(digest)
        self._fingerprint = fingerprint
        return True

    def __len__(self) -> int:
        return len(self._entries)

    async def _miss(self, digest: str) -> KeyGrant | None:
        pending = self._pending.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyGrant | None] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            async with self._miss_gate:
                try:
                    found = await self._store.find_key(digest)
                except (psycopg.Error, PoolTimeout, OSError) as exc:
                    log.warning("key lookup failed", extra={"reason": str(exc)})
                    raise KeyStoreUnavailable(
                        "API keys cannot be checked right now (the database does not answer); "
                        "retry shortly", retry_after=2) from None
            grant = None
            if found is not None and hmac.compare_digest(found[0], digest):
                grant = found[1]
            self._remember(digest, grant)
            future.set_result(grant)
            return grant
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # marked retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._pending[digest]

    def _remember(self, digest: str, grant: KeyGrant | None) -> None:
        self._entries[digest] = grant
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
