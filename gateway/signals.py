"""Per-service load as this gateway sees it, published for the bridge's autoscaler.

The hot path adds and subtracts integers in dicts keyed by task group: ``inflight`` while a
backend of the group works on a request, ``waiting`` while a request is held for the group
to wake. Every ``signals_interval_s`` one upsert writes this worker's numbers to
``gateway_signals`` (one row per group, migration 0006); the bridge sums the fresh rows of
all gateway replicas and workers. So no request writes to the database, a gateway that dies
drops out of the sum once its rows go stale, and the bridge needs no address of any gateway
(scraping every replica's /metrics would need each one discoverable and reachable from the
bridge, which behind a load balancer they are not).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from gateway.store import SignalRow, Store


class ServiceSignals:
    def __init__(self, store: Store, port: int) -> None:
        self._store = store
        self.gateway_id = f"{socket.gethostname()}:{port}:{os.getpid()}"[:200]
        self.inflight: dict[str, int] = {}
        self.waiting: dict[str, int] = {}
        self.requests: dict[str, int] = {}
        self.last_request_at: dict[str, float] = {}  # unix seconds
        self.backends: dict[str, dict[str, int]] = {}  # group -> task id -> in flight

    @contextmanager
    def serving(self, group_id: str, backend_id: str) -> Iterator[None]:
        per = self.backends.setdefault(group_id, {})
        per[backend_id] = per.get(backend_id, 0) + 1
        self.inflight[group_id] = self.inflight.get(group_id, 0) + 1
        self.requests[group_id] = self.requests.get(group_id, 0) + 1
        self.last_request_at[group_id] = time.time()
        try:
            yield
        finally:
            self.inflight[group_id] -= 1
            self.last_request_at[group_id] = time.time()  # idle counts from the end
            left = per[backend_id] - 1
            if left:
                per[backend_id] = left
            else:
                del per[backend_id]

    @contextmanager
    def held(self, group_ids: list[str]) -> Iterator[None]:
        now = time.time()
        for gid in group_ids:
            self.waiting[gid] = self.waiting.get(gid, 0) + 1
            self.last_request_at[gid] = now
        try:
            yield
        finally:
            for gid in group_ids:
                self.waiting[gid] -= 1

    def forget(self, group_ids: set[str]) -> None:
        """Drop groups that no longer exist and have nothing in flight (bounded dicts)."""
        for gid in list(self.requests):
            if gid not in group_ids and not self.inflight.get(gid) and not self.waiting.get(gid):
                for book in (self.inflight, self.waiting, self.requests, self.last_request_at,
                             self.backends):
                    book.pop(gid, None)

    def rows(self) -> list[SignalRow]:
        groups = set(self.requests) | set(self.waiting)
        # The "" row says this gateway is alive even while it has seen no request.
        return [("", 0, 0, 0, None, "{}")] + [(
            gid, self.inflight.get(gid, 0), self.waiting.get(gid, 0), self.requests.get(gid, 0),
            self.last_request_at.get(gid), json.dumps(self.backends.get(gid) or {}))
            for gid in sorted(groups)]

    async def publish(self) -> None:
        await self._store.publish_signals(self.gateway_id, self.rows())

    async def withdraw(self) -> None:
        await self._store.withdraw_signals(self.gateway_id)
