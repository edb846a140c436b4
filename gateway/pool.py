"""BackendPool: the backends of every route target, with health, cooldown and in-flight counts.

Two sources of evidence decide whether a backend gets traffic, as in Envoy (active health
checking plus outlier detection):

- the active verdict of the discovery source (our own probe, or Consul's check), one of
  ``passing``, ``slow`` (the probe timed out), ``failing`` (it answered "unhealthy") and
  ``refused`` (nothing listens);
- the outcome of real requests: a refused connection or a 429 cools a backend down at once,
  repeated 5xx or timeouts after ``failures_before_cooldown`` in a row, and every answer
  that starts records ``last_ok``.

A slow probe is not a dead engine: a CPU engine busy with eight requests may not answer its
health check in time while it keeps answering requests. So a backend whose verdict is
``slow`` stays usable while a real request succeeded within ``busy_grace_s``, and otherwise
takes one request at a time (per worker) as its own probe: a stopped engine then holds at
most one request per worker until the time-to-first-byte bound ends it. When nothing
of a model is usable the proxy asks for ``panic`` candidates (Envoy's panic threshold): the
ejected backends that served once and are not known dead (refused), because routing to a
backend that may be overloaded beats refusing every client.

A backend keeps its identity (and in-flight count) across membership updates, so a request
that started before an update still decrements the right counter when it ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.domain import header_safe
from gateway.upstream import Origin

PASSING, SLOW, FAILING, REFUSED = "passing", "slow", "failing", "refused"
VERDICTS = (PASSING, SLOW, FAILING, REFUSED)


class Backend:
    __slots__ = ("address", "cooldown_until", "failures", "healthy", "id", "inflight",
                 "last_ok", "origin", "pool_key", "reason", "refused_until", "served",
                 "task_id", "verdict")

    def __init__(self, pool_key: str, backend_id: str, origin: Origin, address: str,
                 task_id: str | None) -> None:
        self.pool_key = pool_key
        self.id = header_safe(backend_id)  # named in every response's headers
        self.origin = origin
        self.address = address
        self.task_id = task_id
        self.verdict = ""  # not checked yet
        self.healthy = False  # verdict == passing
        self.served = False  # passed a check once: a panic candidate from then on
        self.reason = "not checked yet"
        self.inflight = 0
        self.failures = 0
        self.cooldown_until = 0.0
        self.refused_until = 0.0  # a real request was refused: known dead until then
        self.last_ok = -1e9  # monotonic time of the last real answer that started

    def usable(self, now: float, grace_s: float) -> bool:
        if now < self.cooldown_until:
            return False
        return self.healthy or (self.verdict == SLOW and (
            self.inflight == 0 or now - self.last_ok < grace_s))

    def panic_candidate(self, now: float) -> bool:
        return self.served and self.verdict != REFUSED and now >= self.refused_until


@dataclass(frozen=True, slots=True)
class Member:
    """One backend as a discovery source reports it."""

    backend_id: str
    address: str  # host:port
    task_id: str | None = None
    verdict: str | None = None  # None: keep what the pool knew (the checker decides)
    reason: str = ""


class BackendPool:
    def __init__(self, *, cooldown_s: float, failures_before_cooldown: int,
                 busy_grace_s: float = 15.0) -> None:
        self._cooldown_s = cooldown_s
        self._failures_before_cooldown = failures_before_cooldown
        self._grace_s = busy_grace_s
        self._members: dict[str, tuple[Backend, ...]] = {}
        self._changed = asyncio.Event()

    # -- reads (hot path) ------------------------------------------------------------------

    def usable(self, pool_key: str, now: float) -> list[Backend]:
        grace = self._grace_s
        return [b for b in self._members.get(pool_key, ()) if b.usable(now, grace)]

    def panic(self, pool_key: str, now: float) -> list[Backend]:
        """Ejected backends worth a try when nothing of the model is usable."""
        return [b for b in self._members.get(pool_key, ()) if b.panic_candidate(now)]

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
            if m.verdict is not None:
                _judge(backend, m.verdict, m.reason or m.verdict)
            fresh.append(backend)
        self._members[pool_key] = tuple(fresh)
        self.notify()

    def set_external(self, pool_key: str, origin: Origin) -> None:
        """An external route's one backend: its base URL, healthy until it fails."""
        current = self._members.get(pool_key, ())
        if len(current) == 1 and current[0].origin == origin:
            return
        backend = Backend(pool_key, "external", origin, str(origin), None)
        _judge(backend, PASSING, "external")
        self._members[pool_key] = (backend,)
        self.notify()

    def drop(self, pool_key: str) -> None:
        if self._members.pop(pool_key, None) is not None:
            self.notify()

    def remove_task(self, task_id: str) -> bool:
        """Take one task's backend out of every pool at once (it is about to be paused)."""
        found = False
        for key, backends in list(self._members.items()):
            kept = tuple(b for b in backends if b.task_id != task_id)
            if len(kept) != len(backends):
                self._members[key] = kept
                found = True
        if found:
            self.notify()
        return found

    def set_verdict(self, backend: Backend, verdict: str, reason: str) -> None:
        before = (backend.verdict, backend.healthy)
        _judge(backend, verdict, reason)
        if (backend.verdict, backend.healthy) != before:
            self.notify()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- passive health from the proxy -----------------------------------------------------

    def report_success(self, backend: Backend) -> None:
        backend.failures = 0
        backend.last_ok = time.monotonic()

    def report_failure(self, backend: Backend, *, at_once: bool = False,
                       refused: bool = False) -> None:
        backend.failures += 1
        if at_once or refused or backend.failures >= self._failures_before_cooldown:
            now = time.monotonic()
            backend.cooldown_until = now + self._cooldown_s
            backend.failures = 0
            if refused:
                backend.refused_until = now + self._cooldown_s

    # -- observability -----------------------------------------------------------------------

    def describe(self) -> dict[str, list[dict[str, object]]]:
        now = time.monotonic()
        return {
            key: [{"id": b.id, "address": b.address, "task_id": b.task_id,
                   "healthy": b.healthy, "verdict": b.verdict or None, "reason": b.reason,
                   "usable": b.usable(now, self._grace_s), "inflight": b.inflight,
                   "cooling_down_s": round(max(0.0, b.cooldown_until - now), 3)}
                  for b in backends]
            for key, backends in self._members.items()
        }


def _judge(backend: Backend, verdict: str, reason: str) -> None:
    backend.verdict = verdict
    backend.healthy = verdict == PASSING
    backend.reason = reason
    if backend.healthy:
        backend.served = True
        backend.refused_until = 0.0
