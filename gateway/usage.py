"""Usage accounting: tokens per key and route, summed in memory, written in batches.

The hot path adds four integers to a dict entry keyed by (minute, key, route, model); a
background flush swaps the dict out and upserts it in one statement every
``usage_flush_interval_s``. If the database is unreachable the rows are kept and retried,
up to ``usage_max_pending`` entries; past that they are dropped and counted in a metric.

Token counts come from the upstream's own ``usage`` object: the last one in a
non-streaming body, or in the last events of a stream (present when the client asked for
``stream_options.include_usage``; other streams count as requests without tokens).
"""

from __future__ import annotations

import json
import logging
import time

from gateway.metrics import GatewayMetrics
from gateway.store import Store, UsageRow

log = logging.getLogger(__name__)

TAIL_BYTES = 8192
_USAGE = b'"usage"'

UsageKey = tuple[int, str, str, str]  # minute (unix seconds), key id, route id, model


class UsageRecorder:
    def __init__(self, store: Store, metrics: GatewayMetrics, *, max_pending: int) -> None:
        self._store = store
        self._metrics = metrics
        self._max_pending = max_pending
        self._pending: dict[UsageKey, list[int]] = {}

    def record(self, key_id: str, route_id: str, model: str, *, prompt: int, completion: int,
               error: bool) -> None:
        entry_key = (int(time.time()) // 60 * 60, key_id, route_id, model)
        entry = self._pending.get(entry_key)
        if entry is None:
            if len(self._pending) >= self._max_pending:
                self._metrics.usage_dropped.inc(())
                return
            entry = self._pending[entry_key] = [0, 0, 0, 0]
        entry[0] += 1
        entry[1] += error
        entry[2] += prompt
        entry[3] += completion

    async def flush(self) -> int:
        """Write what accumulated; returns the number of rows written."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        rows: list[UsageRow] = [(*k, *v) for k, v in batch.items()]  # type: ignore[misc]
        try:
            await self._store.add_usage(rows)
        except Exception:
            log.warning("usage flush failed; keeping the rows for the next try",
                        extra={"rows": len(rows)}, exc_info=True)
            for k, v in batch.items():
                self._merge_back(k, v)
            raise
        return len(rows)

    def _merge_back(self, key: UsageKey, values: list[int]) -> None:
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= self._max_pending:
                self._metrics.usage_dropped.inc(())
                return
            self._pending[key] = values
            return
        for i, v in enumerate(values):
            entry[i] += v


def usage_in(data: bytes) -> tuple[int, int] | None:
    """(prompt, completion) tokens of the last non-null ``"usage"`` object in ``data``."""
    end = len(data)
    while True:
        at = data.rfind(_USAGE, 0, end)
        if at < 0:
            return None
        found = _object_after(data, at + len(_USAGE))
        if found is not None:
            return found
        end = at


def _object_after(data: bytes, pos: int) -> tuple[int, int] | None:
    # Expect optional spaces, a colon, optional spaces, then "{"; a null means "look earlier".
    n = len(data)
    while pos < n and data[pos] in b" \t\r\n":
        pos += 1
    if pos >= n or data[pos] != ord(":"):
        return None
    pos += 1
    while pos < n and data[pos] in b" \t\r\n":
        pos += 1
    if pos >= n or data[pos] != ord("{"):
        return None
    limit = min(n, pos + 4096)
    close = data.find(b"}", pos, limit)
    while close >= 0:
        candidate = data[pos:close + 1]
        if candidate.count(b"{") == candidate.count(b"}"):
            try:
                return _tokens(json.loads(candidate))
            except ValueError:
                return None
        close = data.find(b"}", close + 1, limit)
    return None


def _tokens(obj: object) -> tuple[int, int] | None:
    if not isinstance(obj, dict):
        return None
    prompt = obj.get("prompt_tokens", 0)
    completion = obj.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return max(0, prompt), max(0, completion)
