"""Usage accounting: tokens per key and route, summed in memory, written in batches.

The hot path adds four integers to a dict entry keyed by (minute, key, route, model); a
background flush swaps the dict out and upserts it in one statement every
``usage_flush_interval_s``. If the database is unreachable the rows are kept and retried,
up to ``usage_max_pending`` entries; past that they are dropped and counted in a metric.

Token counts come from the upstream's own ``usage`` object: the last one in a
non-streaming body, or in the last events of a stream (present when the client asked for
``stream_options.include_usage``; see ``stream_usage`` for streams whose engine sends none).

Each key's last use (``api_keys.last_used_at``) rides along: one float per key in memory,
written with the usage rows of the same flush, never a database write per request.
"""

from __future__ import annotations

import logging
import re
import time

from gateway.metrics import GatewayMetrics
from gateway.store import Store, UsageRow

log = logging.getLogger(__name__)

TAIL_BYTES = 8192
_USAGE = b'"usage"'
_OPENING = re.compile(rb"\s*:\s*\{")
_PROMPT = re.compile(rb'"prompt_tokens"\s*:\s*(\d{1,12})\b')
_COMPLETION = re.compile(rb'"completion_tokens"\s*:\s*(\d{1,12})\b')

UsageKey = tuple[int, str, str, str]  # minute (unix seconds), key id, route id, model


class UsageRecorder:
    def __init__(self, store: Store, metrics: GatewayMetrics, *, max_pending: int) -> None:
        self._store = store
        self._metrics = metrics
        self._max_pending = max_pending
        self._pending: dict[UsageKey, list[int]] = {}
        self._last_used: dict[str, float] = {}  # key id -> unix time of its last request

    def record(self, key_id: str, route_id: str, model: str, *, prompt: int, completion: int,
               error: bool) -> None:
        now = time.time()
        self._last_used[key_id] = now
        entry_key = (int(now) // 60 * 60, key_id, route_id, model)
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
        if not self._pending and not self._last_used:
            return 0
        batch, self._pending = self._pending, {}
        used, self._last_used = self._last_used, {}
        rows: list[UsageRow] = [(*k, *v) for k, v in batch.items()]  # type: ignore[misc]
        try:
            await self._store.add_usage(rows, used)
        except Exception:
            log.warning("usage flush failed; keeping the rows for the next try",
                        extra={"rows": len(rows)}, exc_info=True)
            for k, v in batch.items():
                self._merge_back(k, v)
            for key_id, at in used.items():  # one entry per valid key: bounded
                if self._last_used.get(key_id, 0.0) < at:
                    self._last_used[key_id] = at
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
    match = _OPENING.match(data, pos)
    if match is None:
        return None
    start = match.end() - 1
    # The counts are flat integers near the start of the object; a regex on a bounded
    # window costs far less than parsing the object (this runs on every response).
    window = data[start:start + 1024]
    prompt = _PROMPT.search(window)
    completion = _COMPLETION.search(window)
    if prompt is None and completion is None:
        return None
    return (int(prompt.group(1)) if prompt else 0,
            int(completion.group(1)) if completion else 0)
