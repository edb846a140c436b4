"""Embedded discovery: a group's backends are its running tasks, probed by the gateway itself.

Per backend, one probe loop follows the endpoint's ``health_check``: an HTTP GET of ``path``
(healthy below 400) or a TCP connect, every ``interval_seconds``, each bounded by
``timeout_seconds``. A new backend is probed at once and serves after its first pass.

A probe's failure is judged by its kind: a refused connection means nothing listens, and
the backend is out at once (``refused``); an answer of 400 or more (``failing``) and a probe
that timed out (``slow``) count towards ``unhealthy_threshold`` in a row. A ``slow`` backend
still gets traffic while its real requests succeed (see ``pool``): busy is not dead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp

from gateway.discovery.base import DiscoveryContext, routed_groups
from gateway.domain import Group, HealthSpec, Snapshot
from gateway.pool import FAILING, PASSING, REFUSED, SLOW, Backend, Member

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _ProbeKey:
    group_id: str
    backend_id: str
    address: str
    spec: HealthSpec


class HealthChecker:
    def __init__(self, ctx: DiscoveryContext) -> None:
        self._ctx = ctx
        self._probes: dict[_ProbeKey, asyncio.Task[None]] = {}
        self._groups: set[str] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for task in self._probes.values():
            task.cancel()
        self._probes.clear()

    def update(self, snapshot: Snapshot) -> None:
        pool = self._ctx.pool
        groups = routed_groups(snapshot)
        wanted: set[_ProbeKey] = set()
        for group in groups.values():
            members = [Member(backend_id=t.id, address=t.address, task_id=t.id)
                       for t in group.running_tasks if t.address]
            pool.set_members(group.id, members)
            for backend in pool.members(group.id):
                wanted.add(_ProbeKey(group.id, backend.id, backend.address, group.health))
        for gone in self._groups - groups.keys():
            pool.drop(gone)
        self._groups = set(groups)
        for key in list(self._probes):
            if key not in wanted:
                self._probes.pop(key).cancel()
        for key in wanted - self._probes.keys():
            backend = next(b for b in pool.members(key.group_id) if b.id == key.backend_id)
            self._probes[key] = asyncio.get_running_loop().create_task(
                self._probe_loop(backend, key.spec, groups[key.group_id]))

    def health(self) -> dict[str, object]:
        return {"mode": "embedded", "ok": True, "probes": len(self._probes)}

    async def _probe_loop(self, backend: Backend, spec: HealthSpec, group: Group) -> None:
        failures = 0
        pool = self._ctx.pool
        while True:
            started = time.monotonic()
            verdict, reason = await self._probe(backend, spec)
            if verdict == PASSING:
                failures = 0
                if not backend.healthy:
                    log.info("backend healthy", extra={"group": group.name,
                                                       "backend": backend.id})
                pool.set_verdict(backend, PASSING, "passing")
            else:
                failures += 1
                # A backend not yet serving stays out at once, and so does one that refuses
                # connections; a serving one gets the threshold's benefit of the doubt.
                if (not backend.healthy or verdict == REFUSED
                        or failures >= spec.unhealthy_threshold):
                    if backend.healthy:
                        log.warning("backend unhealthy", extra={
                            "group": group.name, "backend": backend.id, "verdict": verdict,
                            "reason": reason})
                    pool.set_verdict(backend, verdict, reason)
            await asyncio.sleep(max(0.0, spec.interval_s - (time.monotonic() - started)))

    async def _probe(self, backend: Backend, spec: HealthSpec) -> tuple[str, str]:
        """The verdict and why."""
        host, port = backend.origin.host, backend.origin.port
        try:
            async with asyncio.timeout(spec.timeout_s):
                if spec.kind == "tcp":
                    _, writer = await asyncio.open_connection(host, port)
                    writer.close()
                    return PASSING, "passing"
                url = f"http://{backend.address}{spec.path}"
                async with self._ctx.session.get(url, allow_redirects=False) as resp:
                    await resp.read()
                    if resp.status < 400:
                        return PASSING, "passing"
                    return FAILING, f"{spec.path} answered {resp.status}"
        except TimeoutError:
            return SLOW, f"no answer within {spec.timeout_s:g} s"
        except (OSError, aiohttp.ClientError) as exc:
            # Connecting failed (refused, unreachable) or the peer dropped the probe: dead.
            kind = REFUSED if isinstance(exc, OSError | aiohttp.ClientConnectorError) else FAILING
            return kind, f"{type(exc).__name__}: {exc}"
