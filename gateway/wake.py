"""Wake on request: ask the bridge to wake a sleeping group once, hold requests meanwhile.

Many requests for a sleeping model cause one wake per group (and again only after
``wake_retry_s`` if the group still sleeps). Requests wait for a usable backend, bounded in
time (``wake_timeout_s``) and in number (``max_held_requests`` per worker); past either
bound they get a 503 with ``Retry-After`` and a sentence saying which bound was hit.

The call itself sits behind ``Waker`` so tests and other control planes can stand in for
the bridge; ``WAKERS`` names the implementations.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import aiohttp
from pydantic import SecretStr

from gateway.domain import Group
from gateway.errors import NoHealthyBackend
from gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class WakeFailed(Exception):
    """The control plane refused or failed to wake a task; the message says why."""


class Waker(Protocol):
    async def wake(self, task_id: str) -> None:
        """Ask for one sleeping task to be woken; return when the request is accepted."""
        ...


class BridgeWaker:
    """``POST {bridge}/api/v1/tasks/{id}/wake`` with the gateway's bearer token."""

    def __init__(self, session: aiohttp.ClientSession, bridge_url: str,
                 token: SecretStr | None) -> None:
        self._session = session
        self._base = bridge_url.rstrip("/")
        self._token = token

    async def wake(self, task_id: str) -> None:
        headers = {}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        url = f"{self._base}/api/v1/tasks/{task_id}/wake"
        try:
            async with self._session.post(url, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=30)) as resp:
                if resp.status < 300 or resp.status == 409:  # 409: already awake or waking
                    return
                text = (await resp.text())[:300]
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WakeFailed(f"the bridge at {self._base} cannot be reached: {exc}") from exc
        raise WakeFailed(f"the bridge answered {resp.status}: {text}")


WAKERS: dict[str, Callable[[aiohttp.ClientSession, str, SecretStr | None], Waker]] = {
    "bridge": BridgeWaker,
}


class WakeCoordinator:
    def __init__(self, waker: Waker, metrics: GatewayMetrics, *, retry_s: float,
                 max_held: int) -> None:
        self._waker = waker
        self._metrics = metrics
        self._retry_s = retry_s
        self._max_held = max_held
        self._running: dict[str, asyncio.Task[None]] = {}
        self._asked_at: dict[str, float] = {}
        self._failed: dict[str, str] = {}  # group -> why its last wake failed
        self.held = 0
        self.held_by_model: dict[str, int] = {}

    def ensure_waking(self, group: Group) -> bool:
        """Start a wake for ``group`` unless one is running or was asked for recently.
        True when the group is asleep (so holding the request makes sense)."""
        sleeping = group.sleeping_tasks
        if not sleeping:
            return False
        if group.id in self._running:
            return True
        now = time.monotonic()
        if now - self._asked_at.get(group.id, -1e9) < self._retry_s:
            return True
        self._asked_at[group.id] = now
        self._failed.pop(group.id, None)
        to_wake = [t.id for t in sleeping if t.status == "sleeping"]
        if to_wake:
            task = asyncio.get_running_loop().create_task(self._wake(group, to_wake))
            self._running[group.id] = task
            task.add_done_callback(lambda _: self._running.pop(group.id, None))
        return True

    @contextmanager
    def holding(self, model: str) -> Iterator[None]:
        if self.held >= self._max_held:
            raise NoHealthyBackend(
                f"model {model!r} is waking up and {self.held} requests already wait for "
                "models to wake on this gateway; retry shortly",
                code="too_many_held_requests", retry_after=self._retry_s)
        self.held += 1
        self.held_by_model[model] = self.held_by_model.get(model, 0) + 1
        try:
            yield
        finally:
            self.held -= 1
            left = self.held_by_model[model] - 1
            if left:
                self.held_by_model[model] = left
            else:
                del self.held_by_model[model]

    def failure(self, group_id: str) -> str | None:
        """Why the last wake of ``group_id`` failed, if it did (until the next attempt)."""
        return self._failed.get(group_id)

    def forget(self, group_ids: set[str]) -> None:
        """Drop bookkeeping of groups that no longer exist (keeps the dicts bounded)."""
        for book in (self._asked_at, self._failed):
            for group_id in list(book):
                if group_id not in group_ids:
                    del book[group_id]

    async def stop(self) -> None:
        for task in list(self._running.values()):
            task.cancel()

    async def _wake(self, group: Group, task_ids: list[str]) -> None:
        results = await asyncio.gather(*(self._waker.wake(t) for t in task_ids),
                                       return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == len(results):
            self._failed[group.id] = str(errors[0]) or type(errors[0]).__name__
        for task_id, result in zip(task_ids, results, strict=True):
            if isinstance(result, BaseException):
                self._metrics.wakes.inc((group.name, "failed"))
                log.warning("wake failed", extra={"group": group.name, "task_id": task_id,
                                                  "reason": str(result)})
            else:
                self._metrics.wakes.inc((group.name, "requested"))
                log.info("wake requested", extra={"group": group.name, "task_id": task_id})
