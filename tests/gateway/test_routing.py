"""Routing rules against real engine doubles: weights, tiers, fallbacks, balancers."""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import httpx

from tests.support.gateway_harness import FAST_HEALTH, Stack, wait_until


async def fire(stack: Stack, key: str, model: str, n: int, concurrency: int = 16,
               **body: object) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=stack.gateway.url, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        gate = asyncio.Semaphore(concurrency)

        async def one() -> httpx.Response:
            async with gate:
                return await http.post("/v1/chat/completions", json={
                    "model": model, "messages": [{"role": "user", "content": "x"}], **body})

        return list(await asyncio.gather(*(one() for _ in range(n))))


def inflight_by_backend(stack: Stack) -> dict[str, float]:
    found = re.findall(r'heteroflow_gateway_backend_inflight\{pool="[^"]*",backend="([^"]*)"\}'
                       r" (\S+)", stack.gateway.metrics())
    return {backend: float(value) for backend, value in found}


class TestWeights:
    async def test_80_20_split_within_statistical_bounds(self, stack: Stack) -> None:
        a, b = stack.double("w-a", "w-a"), stack.double("w-b", "w-b")
        stable = stack.world.add_group("w-stable", model="w-a", route=False)
        canary = stack.world.add_group("w-canary", model="w-b", route=False)
        stable.add_task(a)
        canary.add_task(b)
        stack.world.add_route("weighted", group_id=stable.id, weight=80, version="v1")
        stack.world.add_route("weighted", group_id=canary.id, weight=20, version="canary")
        stack.gateway.wait_usable(stable.id, 1)
        stack.gateway.wait_usable(canary.id, 1)
        await asyncio.to_thread(stack.gateway.wait_serving, stable.key, "weighted")
        responses = await fire(stack, stable.key, "weighted", 1000)
        assert all(r.status_code == 200 for r in responses)
        versions = Counter(r.headers["x-heteroflow-route-version"] for r in responses)
        # Binomial(1000, 0.8): sd 12.6; 4.7 sd either side.
        assert 740 <= versions["v1"] <= 860, versions
        assert versions["v1"] + versions["canary"] == 1000
        # each engine received the body rewritten to its own served name
        assert a.stats()["last_body"]["model"] == "w-a"
        assert b.stats()["last_body"]["model"] == "w-b"


class TestTiers:
    async def test_priority_tiers_and_retry_on_the_next_tier(self, stack: Stack) -> None:
        primary, backup = stack.double("t-primary", "tier"), stack.double("t-backup", "tier")
        first = stack.world.add_group("t-first", model="tier", route=False)
        second = stack.world.add_group("t-second", model="tier", route=False)
        first.add_task(primary)
        second.add_task(backup)
        stack.world.add_route("tiered", group_id=first.id, priority=0, version="p0")
        stack.world.add_route("tiered", group_id=second.id, priority=1, version="p1")
        stack.gateway.wait_usable(first.id, 1)
        stack.gateway.wait_usable(second.id, 1)
        await asyncio.to_thread(stack.gateway.wait_serving, first.key, "tiered")
        responses = await fire(stack, first.key, "tiered", 40)
        assert {r.headers["x-heteroflow-route-version"] for r in responses} == {"p0"}

        # The primary fails before answering: the same requests are retried on tier 1.
        primary.control(mode="error500")
        responses = await fire(stack, first.key, "tiered", 20, concurrency=4)
        assert [r.status_code for r in responses] == [200] * 20
        assert {r.headers["x-heteroflow-route-version"] for r in responses} == {"p1"}

        # The primary is unhealthy: its health check takes it out, tier 1 serves directly.
        primary.control(mode="ok", healthy=False)
        wait_until(lambda: stack.gateway.usable(first.id) == 0, what="primary out of the pool")
        assert stack.gateway.chat(first.key, "tiered").headers[
            "x-heteroflow-route-version"] == "p1"
        primary.control(healthy=True)
        wait_until(lambda: stack.gateway.chat(first.key, "tiered")
                   .headers["x-heteroflow-route-version"] == "p0", what="primary back")

    async def test_weight_zero_is_fallback_only(self, stack: Stack) -> None:
        main, spare = stack.double("z-main", "zero"), stack.double("z-spare", "zero")
        g_main = stack.world.add_group("z-main", model="zero", route=False)
        g_spare = stack.world.add_group("z-spare", model="zero", route=False)
        g_main.add_task(main)
        g_spare.add_task(spare)
        stack.world.add_route("zero", group_id=g_main.id, weight=100, version="main")
        stack.world.add_route("zero", group_id=g_spare.id, weight=0, version="spare")
        stack.gateway.wait_usable(g_main.id, 1)
        stack.gateway.wait_usable(g_spare.id, 1)
        await asyncio.to_thread(stack.gateway.wait_serving, g_main.key, "zero")
        responses = await fire(stack, g_main.key, "zero", 100)
        assert {r.headers["x-heteroflow-route-version"] for r in responses} == {"main"}
        main.kill()  # connection refused: an immediate retry on the fallback
        responses = await fire(stack, g_main.key, "zero", 20, concurrency=4)
        assert {r.status_code for r in responses} == {200}
        assert {r.headers["x-heteroflow-route-version"] for r in responses} == {"spare"}


class TestBalancers:
    async def test_round_robin_and_random_per_route(self, stack: Stack) -> None:
        doubles = [stack.double(f"rr-{i}", "rr") for i in range(3)]
        group = stack.world.add_group("rr-group", model="rr", route=False, algorithm="random")
        tasks = [group.add_task(d) for d in doubles]
        route = stack.world.add_route("rr", group_id=group.id, algorithm="round_robin")
        stack.gateway.wait_usable(group.id, 3)
        await asyncio.to_thread(stack.gateway.wait_serving, group.key, "rr")
        order = [stack.gateway.chat(group.key, "rr").headers["x-heteroflow-backend"]
                 for _ in range(9)]
        assert set(order) == set(tasks)
        assert order[:3] * 3 == order  # a strict rotation

        # the route's override removed: the endpoint's algorithm (random) applies
        stack.world.update_route(route, algorithm=None)
        await asyncio.sleep(0.8)  # a few refresh intervals
        seen = Counter(r.headers["x-heteroflow-backend"]
                       for r in await fire(stack, group.key, "rr", 300))
        assert set(seen) == set(tasks)
        assert min(seen.values()) > 50  # each ~100

    async def test_least_connections_under_load_and_disconnects(self, stack: Stack) -> None:
        slow, fast = stack.double("lc-slow", "lc"), stack.double("lc-fast", "lc")
        slow.control(latency_s=2.0)
        group = stack.world.add_group("lc-group", model="lc", route=False,
                                      algorithm="least_connections", health=FAST_HEALTH)
        slow_task, fast_task = group.add_task(slow), group.add_task(fast)
        stack.world.add_route("lc", group_id=group.id)
        stack.gateway.wait_usable(group.id, 2)
        await asyncio.to_thread(stack.gateway.wait_serving, group.key, "lc")
        async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30,
                                     headers={"Authorization": f"Bearer {group.key}"}) as http:
            async def one() -> str:
                r = await http.post("/v1/chat/completions", json={"model": "lc", "messages": []})
                return r.headers["x-heteroflow-backend"]

            pending = []
            for _ in range(20):
                pending.append(asyncio.create_task(one()))
                await asyncio.sleep(0.03)
            served = Counter(await asyncio.gather(*pending))
        # The slow backend holds its first request for 2 s; meanwhile the fast one has
        # fewer connections every time. Round robin would have sent it half.
        assert served[slow_task] <= 2, served
        assert served[fast_task] >= 18
        wait_until(lambda: inflight_by_backend(stack).get(slow_task) == 0,
                   what="in-flight back to 0")

        # A client that goes away mid-stream: in-flight is decremented at once.
        fast.control(token_rate=5, tokens=50)
        slow.control(latency_s=0, token_rate=5, tokens=50)
        async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30,
                                     headers={"Authorization": f"Bearer {group.key}"}) as http:
            for _ in range(4):
                async with http.stream("POST", "/v1/chat/completions",
                                       json={"model": "lc", "messages": [], "stream": True}) as r:
                    assert r.status_code == 200
                    async for _ in r.aiter_bytes():
                        break
                    assert sum(inflight_by_backend(stack).values()) >= 1
        wait_until(lambda: sum(inflight_by_backend(stack).get(t, 0)
                               for t in (slow_task, fast_task)) == 0,
                   timeout=3, what="in-flight decremented after client disconnects")
