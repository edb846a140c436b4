"""The pure parts (routing plan, balancers, snapshot, usage parsing) and the upstream client
against small real servers on loopback."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from gateway.domain import Group, HealthSpec, KeyGrant, Route, TaskInfo, build_snapshot
from gateway.metrics import GatewayMetrics
from gateway.pool import BackendPool, Member
from gateway.routing.algorithms import LeastConnections, RoundRobin, make_balancer
from gateway.routing.select import plan
from gateway.upstream import (
    ConnectFailed,
    Origin,
    ResponseTooLarge,
    UpstreamClient,
    UpstreamTimeout,
)
from gateway.upstream.response import HIGH_WATER
from gateway.usage import usage_in
from tests.support.pg import free_port


def group(gid: str, model: str, *tasks: TaskInfo, endpoint: str | None = None) -> Group:
    return Group(id=gid, name=gid, model_name=model, status="running",
                 algorithm="round_robin", health=HealthSpec(), endpoint_id=endpoint,
                 tasks=tasks)


def route(rid: str, model: str, gid: str, *, priority: int = 0, weight: int = 100) -> Route:
    return Route(id=rid, model_name=model, version=rid, priority=priority, weight=weight,
                 algorithm="round_robin", served_model=model, group_id=gid)


def pool_with(**members: int) -> BackendPool:
    pool = BackendPool(cooldown_s=5, failures_before_cooldown=3)
    port = 10000
    for key, count in members.items():
        ms = []
        for i in range(count):
            port += 1
            ms.append(Member(f"{key}-{i}", f"127.0.0.1:{port}", verdict="passing"))
        pool.set_members(key, ms)
    return pool


class TestPlan:
    def test_tiers_weights_and_fallbacks(self) -> None:
        snap = build_snapshot(
            [group("a", "m"), group("b", "m"), group("c", "m"), group("d", "m")],
            [route("ra", "m", "a", weight=80), route("rb", "m", "b", weight=20),
             route("rc", "m", "c", weight=0), route("rd", "m", "d", priority=1)])
        tiers = snap.tiers["m"]
        assert [t.priority for t in tiers] == [0, 1]
        pool = pool_with(a=2, b=1, c=1, d=1)
        order = [(r.id, b.id) for r, b in plan(tiers, pool, {}, 0.0)]
        # every backend at most once; the tier-0 fallback before tier 1
        assert len(order) == len(set(order)) == 5
        assert [r for r, _ in order][-2:] == ["rc", "rd"]
        random.seed(7)
        firsts = Counter(next(plan(tiers, pool, {}, 0.0))[0].id for _ in range(10_000))
        assert 7700 < firsts["ra"] < 8300 and firsts["ra"] + firsts["rb"] == 10_000

    def test_fallback_only_when_no_weighted_route_can_serve(self) -> None:
        snap = build_snapshot([group("a", "m"), group("c", "m")],
                              [route("ra", "m", "a"), route("rc", "m", "c", weight=0)])
        pool = pool_with(a=1, c=1)
        assert next(plan(snap.tiers["m"], pool, {}, 0.0))[0].id == "ra"
        pool.members("a")[0].healthy = False
        assert [r.id for r, _ in plan(snap.tiers["m"], pool, {}, 0.0)] == ["rc"]
        pool.report_failure(pool.members("c")[0], at_once=True)
        assert list(plan(snap.tiers["m"], pool, {}, 0.0)) == []  # cooled down

    def test_balancers(self) -> None:
        pool = pool_with(a=3)
        backends = list(pool.members("a"))
        rr = RoundRobin()
        assert [rr.pick(backends).id for _ in range(6)] == ["a-0", "a-1", "a-2"] * 2
        lc = LeastConnections()
        backends[0].inflight, backends[1].inflight, backends[2].inflight = 2, 0, 0
        picks = Counter(lc.pick(backends).id for _ in range(1000))
        assert picks["a-0"] == 0 and picks["a-1"] > 400 and picks["a-2"] > 400
        assert isinstance(make_balancer("nonsense"), RoundRobin)


class TestSnapshot:
    def test_permissions_models_and_sleep(self) -> None:
        asleep = TaskInfo("t1", "sleeping", "127.0.0.1:1", None)
        snap = build_snapshot(
            [group("g1", "served-1", asleep, endpoint="e1"), group("g2", "m2", endpoint="e2")],
            [route("r1", "public", "g1"), route("r2", "public", "g2", priority=1),
             route("r3", "orphan", "gone")])
        mine = KeyGrant("k", "e1")
        assert snap.allowed(mine, "public") and snap.allowed(mine, "served-1")
        assert not snap.allowed(KeyGrant("k", "e-unknown"), "public")
        assert snap.models_for(mine) == ["public"]  # served-1 has no route of its own
        assert [g.id for g in snap.asleep["public"]] == ["g1"]
        assert any("r3" in p and "gone" in p for p in snap.problems)

    def test_health_spec_defaults(self) -> None:
        assert HealthSpec.from_json(None) == HealthSpec()
        spec = HealthSpec.from_json({"type": "weird", "path": "no-slash", "interval_seconds": 0})
        assert (spec.kind, spec.path, spec.interval_s) == ("http", "/health", 0.1)


class TestUsageParsing:
    def test_last_non_null_usage(self) -> None:
        body = (b'data: {"usage": null}\n\ndata: {"choices": [], "usage": {"prompt_tokens": 3,'
                b' "completion_tokens": 9, "prompt_tokens_details": {"cached_tokens": 1}}}\n\n'
                b"data: [DONE]\n\n")
        assert usage_in(body) == (3, 9)
        assert usage_in(b'{"usage": null}') is None
        assert usage_in(b'{"usage": {"prompt_tokens": "x"}}') is None

    def test_metrics_label_escaping(self) -> None:
        metrics = GatewayMetrics()
        metrics.requests.inc(('we"ird\nmodel', "200"))
        assert 'model="we\\"ird\\nmodel"' in metrics.render()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[Origin, list[int]]]:
    """A loopback server; yields its origin and a list that counts connections."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a test server: the client went away, or the test ended
        finally:
            writer.close()

    port = free_port()
    srv = await asyncio.start_server(on_connect, "127.0.0.1", port)
    try:
        yield Origin.from_address(f"127.0.0.1:{port}"), connections
    finally:
        srv.close()


async def read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length")), 0)
    await reader.readexactly(length)


def request_bytes(origin: Origin, stream: bool = False) -> bytes:
    return (b"POST /x HTTP/1.1\r\nHost: " + origin.host_header +
            b"\r\nContent-Length: 2\r\n\r\n{}")


def client(**over: float) -> UpstreamClient:
    settings = {"max_connections": 100, "max_per_host": 10, "connect_timeout": 1,
                "idle_timeout": 30, "max_response_bytes": 1 << 20, **over}
    return UpstreamClient(**settings)  # type: ignore[arg-type]


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class TestUpstreamClient:
    async def test_keep_alive_and_a_stale_connection(self) -> None:
        async def answer_then_maybe_close(reader: asyncio.StreamReader,
                                           writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(OK)  # keep-alive by default in HTTP/1.1 ...
            await writer.drain()
            await read_request(reader)
            writer.write(OK)
            await writer.drain()
            # ... but after two requests the server closes the idle connection silently

        async with server(answer_then_maybe_close) as (origin, connections):
            up = client()
            for _ in range(4):
                r = await up.request(origin, request_bytes(origin), stream=False, wait_s=2)
                assert r.status == 200 and r.body() == b"ok"
                await asyncio.sleep(0.05)
            # 4 requests, 2 per connection; the third found its reused connection closed
            # and was retried on a fresh one without the caller noticing
            assert len(connections) == 2
            await up.close()

    async def test_per_host_limit_queues_requests(self) -> None:
        async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await read_request(reader)
                await asyncio.sleep(0.05)
                writer.write(OK)
                await writer.drain()

        async with server(slow) as (origin, connections):
            up = client(max_per_host=2)
            results = await asyncio.gather(*(
                up.request(origin, request_bytes(origin), stream=False, wait_s=5)
                for _ in range(10)))
            assert all(r.status == 200 for r in results)
            assert len(connections) == 2
            await up.close()

    async def test_timeouts_limits_and_refusals(self) -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            await asyncio.sleep(5)

        async with server(silent) as (origin, _):
            with pytest.raises(UpstreamTimeout):
                await client().request(origin, request_bytes(origin), stream=False, wait_s=0.3)

        async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 5_000_000)
            await writer.drain()

        async with server(huge) as (origin, _):
            with pytest.raises(ResponseTooLarge):
                await client().request(origin, request_bytes(origin), stream=False, wait_s=5)

        dead = Origin.from_address(f"127.0.0.1:{free_port()}")
        with pytest.raises(ConnectFailed):
            await client().request(dead, request_bytes(dead), stream=False, wait_s=1)

    async def test_streaming_is_flow_controlled(self) -> None:
        written: list[int] = []

        async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"y" * 16384
            for _ in range(2000):  # 32 MB if nobody pushed back
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                written.append(len(piece))
            writer.write(b"0\r\n\r\n")
            await writer.drain()

        async with server(firehose) as (origin, _):
            up = client(max_response_bytes=1 << 30)
            response = await up.request(origin, request_bytes(origin), stream=True, wait_s=5)
            await asyncio.sleep(1.0)  # the reader reads nothing
            # at most the high-water mark plus what one socket read delivered after it
            assert response._buffered <= HIGH_WATER + 256 * 1024
            assert sum(written) < 12 * 1024 * 1024  # held back by TCP, not buffered here
            total = 0
            while (chunk := await response.next_chunk(5)) is not None:
                total += len(chunk)
            assert total == 2000 * 16384
            await up.close()
