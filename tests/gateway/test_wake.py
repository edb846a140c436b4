"""Wake on request: one wake for many held requests, bounded in time and in number."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway_harness import Proc, Stack, wait_until
from tests.support.pg import free_port, fresh_database

TOKEN = "hf-gateway-token-for-tests"


class Bridge(Proc):
    def __init__(self, stack_logs: Any, db_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([sys.executable, "-m", "tests.support.bridge_standin", "--port",
                          str(self.port), "--db", db_url, "--token", TOKEN],
                         stack_logs / f"bridge-standin-{self.port}.log")
        wait_until(lambda: httpx.get(self.url + "/_calls", timeout=1).status_code == 200)

    def calls(self) -> list[str]:
        result: list[str] = httpx.get(self.url + "/_calls").json()
        return result

    def mode(self, mode: str) -> None:
        httpx.post(self.url + "/_control", json={"mode": mode}).raise_for_status()


@pytest.fixture(scope="module")
def bridge(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Bridge, str]]:
    logs = tmp_path_factory.mktemp("standin")
    db_url = fresh_database(pg)
    standin = Bridge(logs, db_url)
    try:
        yield standin, db_url
    finally:
        standin.stop()


@pytest.fixture(scope="module")
def stack(bridge: tuple[Bridge, str],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    standin, db_url = bridge
    s = Stack(tmp_path_factory.mktemp("gw-wake"), db_url, HETEROFLOW_BRIDGE_URL=standin.url,
              HETEROFLOW_GATEWAY_TOKEN=TOKEN, HETEROFLOW_WAKE_TIMEOUT_S="3",
              HETEROFLOW_MAX_HELD_REQUESTS="5", HETEROFLOW_WAKE_RETRY_S="30")
    try:
        yield s
    finally:
        s.close()


async def burst(stack: Stack, key: str, model: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=30,
                                 limits=httpx.Limits(max_connections=n),
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        return list(await asyncio.gather(*(
            http.post("/v1/chat/completions", json={"model": model, "messages": []})
            for _ in range(n))))


class TestWake:
    async def test_one_wake_serves_every_held_request(self, stack: Stack,
                                                      bridge: tuple[Bridge, str]) -> None:
        standin, _ = bridge
        double = stack.double("sleepy", "sleepy", extra=["--sleeping"])
        double.control(wake_delay_s=0.3)
        group = stack.world.add_group("sleepy")
        task = group.add_task(double, status="sleeping")
        await asyncio.sleep(0.6)  # the gateway has seen the sleeping task
        started = time.monotonic()
        responses = await burst(stack, group.key, "sleepy", 5)
        assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
        assert time.monotonic() - started < 3
        assert standin.calls().count(task) == 1  # one wake for all of them
        assert double.stats()["sleeping"] is False
        assert stack.world.sql("SELECT status FROM tasks WHERE id = %s", (task,)) == [
            ("running",)]

    async def test_bound_in_time(self, stack: Stack, bridge: tuple[Bridge, str]) -> None:
        standin, _ = bridge
        standin.mode("ignore")  # accepted, but the task never wakes
        try:
            double = stack.double("never", "never", extra=["--sleeping"])
            group = stack.world.add_group("never")
            task = group.add_task(double, status="sleeping")
            await asyncio.sleep(0.6)
            started = time.monotonic()
            r = stack.gateway.chat(group.key, "never")
            waited = time.monotonic() - started
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "model_waking"
            assert "waking up" in r.json()["error"]["message"]
            assert int(r.headers["retry-after"]) >= 1
            assert 2.5 <= waited < 5
            assert standin.calls().count(task) == 1
        finally:
            standin.mode("wake")

    async def test_bound_in_number(self, stack: Stack, bridge: tuple[Bridge, str]) -> None:
        standin, _ = bridge
        standin.mode("ignore")
        try:
            double = stack.double("crowd", "crowd", extra=["--sleeping"])
            group = stack.world.add_group("crowd")
            group.add_task(double, status="sleeping")
            await asyncio.sleep(0.6)
            responses = await burst(stack, group.key, "crowd", 12)
            codes = Counter(r.json()["error"]["code"] for r in responses)
            assert codes == {"too_many_held_requests": 7, "model_waking": 5}
            assert all(r.status_code == 503 and r.headers.get("retry-after")
                       for r in responses)
        finally:
            standin.mode("wake")
        text = stack.gateway.metrics()
        assert 'heteroflow_gateway_wakes_total{group="crowd",outcome="requested"} 1' in text

    async def test_failed_wake_is_reported(self, stack: Stack,
                                           bridge: tuple[Bridge, str]) -> None:
        standin, _ = bridge
        standin.mode("fail")
        try:
            double = stack.double("broken-wake", "broken-wake", extra=["--sleeping"])
            group = stack.world.add_group("broken-wake")
            group.add_task(double, status="sleeping")
            await asyncio.sleep(0.6)
            started = time.monotonic()
            r = stack.gateway.chat(group.key, "broken-wake")
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "wake_failed"
            assert "the bridge answered 500" in r.json()["error"]["message"]
            assert time.monotonic() - started < 2  # no need to wait for the time bound
        finally:
            standin.mode("wake")
        assert ('heteroflow_gateway_wakes_total{group="broken-wake",outcome="failed"} 1'
                in stack.gateway.metrics())
