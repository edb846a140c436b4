"""GatewayRuntime: everything one worker process owns, and its background loops.

Built in the server's ``before_server_start`` listener (so each worker has its own upstream
client, pool and caches) and closed in ``after_server_stop``. Background loops:

    refresh   every refresh_interval_s (faster while requests are held for a wake): read
              groups, tasks and routes; when they changed, build a new Snapshot and hand it to
              the pool, the discovery source and the balancers. Route changes made through
              the REST API thus take effect within about a second, without a restart.
    keys      every key_recheck_interval_s: revalidate cached API keys if the table moved.
    usage     every usage_flush_interval_s: write the accumulated usage rows.

A failing database never stops the gateway: it keeps serving from the last snapshot and
the health endpoint says what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from gateway.discovery.base import Discovery, DiscoveryContext
from gateway.discovery.registry import DISCOVERIES, discovery_mode
from gateway.domain import EMPTY, Snapshot
from gateway.keys import KeyCache
from gateway.metrics import GatewayMetrics
from gateway.pool import BackendPool
from gateway.routing.algorithms import Balancer, make_balancer
from gateway.settings import GatewaySettings
from gateway.store import Store, WorldRows, snapshot_from_rows
from gateway.upstream import UpstreamClient
from gateway.upstream_keys import UpstreamKeyBox
from gateway.usage import UsageRecorder
from gateway.wake import WAKERS, WakeCoordinator

log = logging.getLogger(__name__)

HELD_REFRESH_S = 0.25
METRICS_SHARE_S = 1.0
METRICS_STALE_S = 10.0  # exports older than this belong to workers that are gone


class GatewayRuntime:
    def __init__(self, settings: GatewaySettings, database_url: str) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics()
        self.store = Store(database_url)
        self.keys = KeyCache(self.store, max_entries=settings.key_cache_size)
        self.pool = BackendPool(cooldown_s=settings.cooldown_s,
                                failures_before_cooldown=settings.failures_before_cooldown,
                                busy_grace_s=settings.busy_grace_s)
        self.usage = UsageRecorder(self.store, self.metrics,
                                   max_pending=settings.usage_max_pending)
        self.client = UpstreamClient(
            max_connections=settings.upstream_max_connections,
            max_per_host=settings.upstream_max_connections_per_host,
            connect_timeout=settings.connect_timeout_s,
            idle_timeout=settings.upstream_idle_timeout_s,
            max_response_bytes=settings.max_response_bytes)
        self.snapshot: Snapshot = EMPTY
        self.loaded = False
        self.balancers: dict[str, Balancer] = {}
        self.inflight = 0
        self.inflight_by_key: dict[str, int] = {}
        self.db_error = "not read yet"
        self._world: WorldRows | None = None
        self._box = UpstreamKeyBox(None, "not loaded")
        self._algorithms: dict[str, str] = {}
        self._problems: tuple[str, ...] = ()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.discovery: Discovery
        self.wake: WakeCoordinator

    async def start(self) -> None:
        settings = self.settings
        self._box = await asyncio.to_thread(UpstreamKeyBox.from_settings, settings)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256, limit_per_host=32))
        ctx = DiscoveryContext(settings=settings, pool=self.pool, session=self._session,
                               metrics=self.metrics)
        self.discovery = DISCOVERIES[discovery_mode(ctx)](ctx)
        waker = WAKERS["bridge"](self._session, settings.bridge_url, settings.gateway_token)
        self.wake = WakeCoordinator(waker, self.metrics, retry_s=settings.wake_retry_s,
                                    max_held=settings.max_held_requests)
        await self.client.start()
        await self.store.open()
        await self.discovery.start()
        self._install_gauges()
        loop = asyncio.get_running_loop()
        loops: list[tuple[str, Callable[[], Awaitable[object]], Callable[[], float]]] = [
            ("refresh", self.refresh, self._refresh_interval),
            ("keys", self.keys.recheck, lambda: settings.key_recheck_interval_s),
            ("usage", self.usage.flush, lambda: settings.usage_flush_interval_s),
        ]
        if settings.workers > 1:
            loops.append(("metrics", self._export_metrics, lambda: METRICS_SHARE_S))
        for name, body, interval in loops:
            self._tasks.append(loop.create_task(self._every(name, body, interval)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):  # flush logged it; shutting down anyway
            await self.usage.flush()
        with contextlib.suppress(OSError):
            (self.settings.metrics_dir / f"{os.getpid()}.json").unlink(missing_ok=True)
        await self.wake.stop()
        await self.discovery.stop()
        await self.client.close()
        if self._session is not None:
            await self._session.close()
        await self.store.close()

    async def refresh(self) -> None:
        """Read the world; apply a new snapshot if anything changed."""
        try:
            world = await self.store.load_world()
        except Exception as exc:
            if not self.db_error:
                log.warning("database unreachable; serving the last known routes",
                            extra={"reason": str(exc)})
            self.db_error = str(exc) or type(exc).__name__
            raise
        self.db_error = ""
        if world == self._world:
            return
        self._world = world
        self.apply(snapshot_from_rows(world, self._box))

    def apply(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.loaded = True
        algorithms = {r.id: r.algorithm for r in snapshot.routes}
        self.balancers = {
            rid: (self.balancers[rid] if self._algorithms.get(rid) == algo
                  and rid in self.balancers else make_balancer(algo))
            for rid, algo in algorithms.items()
        }
        self._algorithms = algorithms
        external = {r.pool_key: r.external for r in snapshot.routes if r.external is not None}
        for key in self.pool.pool_keys():
            if key.startswith("route:") and key not in external:
                self.pool.drop(key)
        for key, ext in external.items():
            self.pool.set_external(key, ext.origin)
        self.discovery.update(snapshot)
        self.wake.forget(set(snapshot.groups))
        for problem in snapshot.problems:
            if problem not in self._problems:
                log.warning("route not served", extra={"reason": problem})
        self._problems = snapshot.problems

    def health(self) -> dict[str, object]:
        now = time.monotonic()
        pools: dict[str, dict[str, Any]] = {}
        for k in self.pool.pool_keys():
            members = self.pool.members(k)
            verdicts: dict[str, int] = {}
            for b in members:
                verdicts[b.verdict or "unchecked"] = verdicts.get(b.verdict or "unchecked", 0) + 1
            pools[k] = {"usable": len(self.pool.usable(k, now)), "total": len(members),
                        "panic_candidates": len(self.pool.panic(k, now)), "verdicts": verdicts}
        usable = sum(p["usable"] for p in pools.values())
        total = sum(p["total"] for p in pools.values())
        discovery = self.discovery.health()
        ok = self.loaded and not self.db_error and bool(discovery.get("ok"))
        return {
            "status": "ok" if ok else "degraded",
            "database": {"ok": not self.db_error, "error": self.db_error or None},
            "discovery": discovery,
            "models": len(self.snapshot.tiers),
            "routes": len(self.snapshot.routes),
            "routes_not_served": list(self.snapshot.problems),
            "backends": {"usable": usable, "total": total},
            "pools": pools,
            "inflight": self.inflight,
            "held_requests": self.wake.held,
        }

    async def render_metrics(self) -> str:
        """The exposition for a scrape: this worker's numbers plus the other workers'."""
        if self.settings.workers <= 1:
            return self.metrics.render()
        others = await asyncio.to_thread(_read_exports, self.settings.metrics_dir, os.getpid())
        return self.metrics.render(others)

    async def _export_metrics(self) -> None:
        data = json.dumps(self.metrics.export())
        await asyncio.to_thread(_write_export, self.settings.metrics_dir, os.getpid(), data)

    def _refresh_interval(self) -> float:
        interval = self.settings.refresh_interval_s
        return min(interval, HELD_REFRESH_S) if self.wake.held else interval

    async def _every(self, name: str, body: Callable[[], Awaitable[object]],
                     interval: Callable[[], float]) -> None:
        while True:
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.debug("background step failed", extra={"loop": name}, exc_info=True)
            await asyncio.sleep(interval())

    def _install_gauges(self) -> None:
        m = self.metrics
        pool = self.pool

        def pool_sizes() -> list[tuple[tuple[str, ...], float]]:
            now = time.monotonic()
            out: list[tuple[tuple[str, ...], float]] = []
            for key in pool.pool_keys():
                members = pool.members(key)
                usable = len(pool.usable(key, now))
                out.append(((key, "usable"), usable))
                out.append(((key, "unusable"), len(members) - usable))
            return out

        m.gauge("pool_backends", "Backends per pool (task group or external route).",
                ("pool", "state"), pool_sizes, merge="max")
        m.gauge("backend_inflight", "Requests in flight per backend.", ("pool", "backend"),
                lambda: [((k, b.id), b.inflight)
                         for k in pool.pool_keys() for b in pool.members(k)])
        m.gauge("held_requests", "Requests held while their model wakes up.", ("model",),
                lambda: list(((k,), v) for k, v in self.wake.held_by_model.items()))
        m.gauge("inflight", "Requests in flight in this worker.", (),
                lambda: [((), self.inflight)])
        m.gauge("discovery_up", "1 while the backend source (Consul) answers.", ("mode",),
                lambda: [((str(self.discovery.health()["mode"]),),
                          1.0 if self.discovery.health().get("ok") else 0.0)], merge="min")
        m.gauge("database_up", "1 while the database answers.", (),
                lambda: [((), 0.0 if self.db_error else 1.0)], merge="min")
        m.gauge("upstream_connections", "Upstream connections of this worker.", ("state",),
                lambda: [((k,), v) for k, v in self.client.stats().items()])


def _write_export(folder: Path, pid: int, data: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{pid}.json.tmp"
    tmp.write_text(data)
    os.replace(tmp, folder / f"{pid}.json")


def _read_exports(folder: Path, own_pid: int) -> list[dict[str, list[Any]]]:
    found: list[dict[str, list[Any]]] = []
    now = time.time()
    for path in folder.glob("*.json") if folder.is_dir() else ():
        if path.stem == str(own_pid):
            continue
        try:
            if now - path.stat().st_mtime > METRICS_STALE_S:
                continue
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a worker replacing its file right now, or gone
    return found
