"""BackendPool: the backends of every route target, with health, cooldown and in-flight counts.

Membership and health come from one discovery source (Consul, or the embedded checker);
the proxy adds what it observes passively: a refused connection or a 429 cools a backend
down at once, repeated 5xx or timeouts after ``failures_before_cooldown`` in a row. A backend
keeps its identity (and in-flight count) across membership updates, so a request that
started before an update still decrements the right counter when it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.domain import header_safe
from gateway.upstream import Origin


class Backend:
    __slots__ = ("address", "auth", "cooldown_until", "failures", "healthy", "id",
                 "inflight", "origin", "pool_key", "reason", "task_id")

    def __init__(self, pool_key: str, backend_id: str, origin: Origin, address: str,
                 task_id: str | None) -> None:
        self.pool_key = pool_key
        self.id = header_safe(backend_id)  # named in every response's headers
        self.origin = origin
        self.address = address
        self.task_id = task_id
        self.auth = b""  # the Authorization header line its engine wants (a per-task key)
        self.healthy = False
        self.reason = "not checked yet"
        self.inflight = 0
        self.failures = 0
        self.cooldown_until = 0.0

    def usable(self, now: float) -> bool:
        return self.healthy and now >= self.cooldown_until


@dataclass(frozen=True, slots=True)
class Member:
    """One backend as a discovery source reports it."""

    backend_id: str
    address: str  # host:port
    task_id: str | None = None
    healthy: bool | None = None  # None: keep what the pool knew (checker decides)


class BackendPool:
    def __init__(self, *, cooldown_s: float, failures_before_cooldown: int,
                 engine_auth: Callable[[str | None], bytes] = lambda _: b"") -> None:
        self._engine_auth = engine_auth
        self._cooldown_s = cooldown_s
        self._failures_before_cooldown = failures_before_cooldown
        self._members: dict[str, tuple[Backend, ...]] = {}
        self._changed = asyncio.Event()

    # -- reads (hot path) ------------------------------------------------------------------

    def usable(self, pool_key: str, now: float) -> list[Backend]:
        return [b for b in self._members.get(pool_key, ()) if b.healthy
                and now >= b.cooldown_until]

    def members(self, pool_key: str) -> tuple[Backend, ...]:
        return self._members.get(pool_key, ())

    def pool_keys(self) -> list[str]:
        return list(self._members)

    async def wait_changed(self) -> None:
        """Until the next membership or health change (for requests held during a wake)."""
        await self._changed.wait()

    # -- writes from discovery ---------------------------------------------------------------

    def set_members(self, pool_key: str, members: Iterable[Member]) -> None:
        old = {b.id: b for b in self._members.get(pool_key, ())}
        fresh: list[Backend] = []
        for m in members:
            backend = old.get(header_safe(m.backend_id))
            if backend is None or backend.address != m.address:
                backend = Backend(pool_key, m.backend_id, Origin.from_address(m.address),
                                  m.address, m.task_id)
            backend.task_id = m.task_id
            backend.auth = self._engine_auth(m.task_id)
            if m.healthy is not None:
                backend.healthy = m.healthy
                backend.reason = "passing" if m.healthy else "failing"
            fresh.append(backend)
        self._members[pool_key] = tuple(fresh)
        self.notify()

    def set_external(self, pool_key: str, origin: Origin) -> None:
        """An external route's one backend: its base URL, healthy until it fails."""
        current = self._members.get(pool_key, ())
        if len(current) == 1 and current[0].origin == origin:
            return
        backend = Backend(pool_key, "external", origin, str(origin), None)
        backend.healthy = True
        backend.reason = "external"
        self._members[pool_key] = (backend,)
        self.notify()

    def drop(self, pool_key: str) -> None:
        if self._members.pop(pool_key, None) is not None:
            self.notify()

    def set_health(self, backend: Backend, healthy: bool, reason: str) -> None:
        changed = backend.healthy != healthy
        backend.healthy = healthy
        backend.reason = reason
        if changed:
            self.notify()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- passive health from the proxy -----------------------------------------------------

    def report_success(self, backend: Backend) -> None:
        backend.failures = 0

    def report_failure(self, backend: Backend, *, at_once: bool = False) -> None:
        backend.failures += 1
        if at_once or backend.failures >= self._failures_before_cooldown:
            backend.cooldown_until = time.monotonic() + self._cooldown_s
            backend.failures = 0

    # -- observability -----------------------------------------------------------------------

    def describe(self) -> dict[str, list[dict[str, object]]]:
        now = time.monotonic()
        return {
            key: [{"id": b.id, "address": b.address, "task_id": b.task_id,
                   "healthy": b.healthy, "reason": b.reason, "inflight": b.inflight,
                   "cooling_down_s": round(max(0.0, b.cooldown_until - now), 3)}
                  for b in backends]
            for key, backends in self._members.items()
        }
