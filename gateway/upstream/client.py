"""UpstreamClient: keep-alive connection pools per origin, with explicit limits.

One client per worker process, opened when the server starts. Limits are explicit and
large (a client library's default of 100 connections is what made a peer's time-to-first-
token collapse above 100 concurrent streams). Requests past the per-origin limit wait for a
connection in arrival order; the number waiting is bounded by the gateway's in-flight limit.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from dataclasses import dataclass, field

from gateway.upstream.connection import Connection
from gateway.upstream.errors import ConnectFailed, ConnectionClosed
from gateway.upstream.origin import Origin
from gateway.upstream.response import Response

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _HostPool:
    idle: list[Connection] = field(default_factory=list)
    open: int = 0  # idle + busy + connecting
    waiters: deque[asyncio.Future[Connection | None]] = field(default_factory=deque)


class UpstreamClient:
    def __init__(self, *, max_connections: int, max_per_host: int, connect_timeout: float,
                 idle_timeout: float, max_response_bytes: int) -> None:
        self._max_total = max_connections
        self._max_per_host = max_per_host
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._max_response_bytes = max_response_bytes
        self._pools: dict[Origin, _HostPool] = {}
        self._total = 0
        self._ssl: ssl.SSLContext | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_idle())

    async def close(self) -> None:
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for pool in self._pools.values():
            for conn in pool.idle:
                conn.close()
            pool.idle.clear()
            while pool.waiters:
                waiter = pool.waiters.popleft()
                if not waiter.done():
                    waiter.set_exception(ConnectFailed("the gateway is shutting down"))

    async def request(self, origin: Origin, data: bytes, *, stream: bool,
                      wait_s: float) -> Response:
        """Send ``data`` (a complete request) and wait for the head (``stream``) or the whole
        response. A reused connection that the peer had already closed gets one transparent
        retry on a fresh connection: the peer never saw the request."""
        for attempt in (0, 1):
            conn = await self._acquire(origin)
            response = conn.send(data, stream=stream, max_bytes=self._max_response_bytes)
            try:
                await response.wait_head(wait_s)
            except ConnectionClosed:
                if attempt == 0 and conn.reused and not response.received_any:
                    continue
                raise
            except BaseException:
                response.abort()  # timeout or cancellation: the connection is spoiled
                raise
            return response
        raise AssertionError("unreachable")

    def stats(self) -> dict[str, int]:
        return {"open": self._total,
                "idle": sum(len(p.idle) for p in self._pools.values()),
                "waiting": sum(len(p.waiters) for p in self._pools.values())}

    # -- pooling ---------------------------------------------------------------------------

    async def _acquire(self, origin: Origin) -> Connection:
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _HostPool()
        now = time.monotonic()
        while pool.idle:
            conn = pool.idle.pop()
            if not conn.closed and now - conn.idle_since < self._idle_timeout:
                return conn
            conn.close()
        while pool.open >= self._max_per_host or self._total >= self._max_total:
            if self._closing:
                raise ConnectFailed("the gateway is shutting down")
            if pool.open == 0:
                # Only this origin's own connections wake its waiters; with none open, the
                # global limit is what bites, and waiting could last forever.
                raise ConnectFailed("the gateway's upstream connection limit is reached")
            waiter: asyncio.Future[Connection | None] = (
                asyncio.get_running_loop().create_future())
            pool.waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    given = waiter.result()
                    if given is not None:
                        self._release(given)
                raise
            if handed is not None:
                return handed
        return await self._connect(origin, pool)

    async def _connect(self, origin: Origin, pool: _HostPool) -> Connection:
        pool.open += 1
        self._total += 1
        loop = asyncio.get_running_loop()
        conn = Connection(origin, loop, self._release, self._lost)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await loop.create_connection(
                    lambda: conn, origin.host, origin.port,
                    ssl=self._ssl_context() if origin.tls else None,
                    server_hostname=origin.host if origin.tls else None)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self._forget(origin, pool)
            raise ConnectFailed(f"cannot connect to {origin}: {exc or type(exc).__name__}") \
                from exc
        except BaseException:
            self._forget(origin, pool)
            raise
        return conn

    def _release(self, conn: Connection) -> None:
        pool = self._pools.get(conn.origin)
        if pool is None or conn.closed:
            return
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if self._closing:
            conn.close()
            return
        pool.idle.append(conn)

    def _lost(self, conn: Connection) -> None:
        pool = self._pools.get(conn.origin)
        if pool is None:
            return
        if conn in pool.idle:
            pool.idle.remove(conn)
        self._forget(conn.origin, pool)

    def _forget(self, origin: Origin, pool: _HostPool) -> None:
        """One connection of ``origin`` is gone: free its slot for a waiter, if any."""
        pool.open -= 1
        self._total -= 1
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # "a slot is free: connect yourself"
                return

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _sweep_idle(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self._idle_timeout / 2))
            now = time.monotonic()
            for pool in self._pools.values():
                stale = [c for c in pool.idle if now - c.idle_since >= self._idle_timeout]
                for conn in stale:
                    conn.close()  # connection_lost removes it from the pool
