"""Usage rows in PostgreSQL, Prometheus metrics, and external (cloud) upstream routes."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from cryptography.fernet import Fernet

from tests.support.gateway_harness import Stack, wait_until
from tests.support.pg import fresh_database

SECRET = Fernet.generate_key()
CLOUD_KEY = "cloud-upstream-key-0123456789"


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw-acct"), fresh_database(pg),
              HETEROFLOW_SECRET_KEY=SECRET.decode())
    try:
        yield s
    finally:
        s.close()


class TestUsage:
    def test_tokens_per_key_and_route_reach_the_database(self, stack: Stack) -> None:
        double = stack.double("usage", "usage")
        group = stack.world.add_group("usage")
        group.add_task(double)
        stack.gateway.wait_serving(group.key, "usage")
        key_id = stack.world.key_id(group.key)
        sdk = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=group.key,
                            max_retries=0)
        for _ in range(5):
            sdk.chat.completions.create(model="usage", messages=[])
        list(sdk.chat.completions.create(model="usage", messages=[], stream=True,
                                         stream_options={"include_usage": True}))
        list(sdk.chat.completions.create(model="usage", messages=[], stream=True))

        def totals() -> tuple[Any, ...]:
            rows = stack.world.sql(
                "SELECT sum(requests), sum(prompt_tokens), sum(completion_tokens), sum(errors)"
                " FROM gateway_usage WHERE api_key_id = %s AND route_id = %s",
                (key_id, group.route_id))
            return rows[0]

        # wait_serving made one request too: 8 in all, 7 of them reporting usage; the
        # stream without usage is counted by the gateway (4 relayed tokens, no prompt).
        wait_until(lambda: totals()[0] == 8, what="usage flushed")
        assert totals() == (8, 7 * 7, 8 * 4, 0)
        minutes = stack.world.sql("SELECT count(*) FROM gateway_usage WHERE api_key_id = %s",
                                  (key_id,))[0][0]
        assert minutes <= 2  # one row per minute, not per request


class TestMetrics:
    def test_exposition(self, stack: Stack) -> None:
        double = stack.double("metered", "metered")
        group = stack.world.add_group("metered")
        task = group.add_task(double)
        stack.gateway.wait_serving(group.key, "metered")
        for _ in range(3):
            stack.gateway.chat(group.key, "metered")
        stack.gateway.chat(group.key, "no-such-model")
        text = stack.gateway.metrics()
        assert re.search(r'^heteroflow_gateway_requests_total\{model="metered",status="200"\} '
                         r"[4-9]", text, re.M)
        assert 'heteroflow_gateway_requests_total{model="_other",status="404"}' in text
        assert "heteroflow_gateway_overhead_seconds_bucket" in text
        assert "heteroflow_gateway_request_duration_seconds_count" in text
        assert f'heteroflow_gateway_pool_backends{{pool="{group.id}",state="usable"}} 1' in text
        assert (f'heteroflow_gateway_backend_inflight{{pool="{group.id}",backend="{task}"}} 0'
                in text)
        assert "heteroflow_gateway_held_requests" in text
        assert 'heteroflow_gateway_database_up 1' in text
        # every sample line is "name{labels} number"
        for line in text.splitlines():
            if line and not line.startswith("#"):
                assert re.match(r"^[a-z_:]+(\{[^}]*\})? -?[0-9.e+-]+$", line), line


class TestExternalRoutes:
    def test_cloud_tier_as_hybrid_fallback(self, stack: Stack) -> None:
        cloud = stack.double("cloud", "cloud-served", extra=["--api-key", CLOUD_KEY])
        local = stack.double("local", "hybrid")
        group = stack.world.add_group("hybrid")
        task = group.add_task(local)
        token = Fernet(SECRET).encrypt(CLOUD_KEY.encode()).decode()
        stack.world.add_route("hybrid", upstream_url=f"{cloud.url}/v1", upstream_key=token,
                              upstream_model="cloud-served", priority=1, version="cloud")
        stack.gateway.wait_serving(group.key, "hybrid")
        assert stack.gateway.chat(group.key, "hybrid").headers["x-heteroflow-backend"] == task

        local.kill()  # local GPUs gone: the cloud tier serves, stream and all
        r = stack.gateway.chat(group.key, "hybrid")
        assert r.status_code == 200
        assert r.headers["x-heteroflow-route-version"] == "cloud"
        assert r.headers["x-heteroflow-backend"] == "external"
        seen = cloud.stats()
        assert seen["last_headers"]["Authorization"] == f"Bearer {CLOUD_KEY}"
        assert seen["last_body"]["model"] == "cloud-served"
        sdk = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=group.key,
                            max_retries=0)
        text = "".join(c.choices[0].delta.content or "" for c in sdk.chat.completions.create(
            model="hybrid", messages=[], stream=True) if c.choices)
        assert text.startswith("cloud-0")

    def test_undecryptable_key_skips_the_route_with_a_reason(self, stack: Stack) -> None:
        cloud = stack.double("cloud-2", "cloud-2", extra=["--api-key", CLOUD_KEY])
        group = stack.world.add_group("only-cloud", route=False)
        wrong = Fernet(Fernet.generate_key()).encrypt(CLOUD_KEY.encode()).decode()
        route = stack.world.add_route("only-cloud", upstream_url=f"{cloud.url}/v1",
                                      upstream_key=wrong)
        wait_until(lambda: any(route in p for p in
                               stack.gateway.health()["routes_not_served"]))
        reason = next(p for p in stack.gateway.health()["routes_not_served"] if route in p)
        assert "another secret key" in reason
        assert stack.gateway.chat(group.key, "only-cloud").status_code == 404
        time.sleep(0.3)
        assert CLOUD_KEY not in stack.gateway.output()  # never logged

    def test_unreachable_upstream_is_a_502(self, stack: Stack) -> None:
        group = stack.world.add_group("dead-cloud", route=False)
        stack.world.add_route("dead-cloud", upstream_url="http://127.0.0.1:9/v1")
        r = wait_until(lambda: (x := stack.gateway.chat(group.key, "dead-cloud"))
                       .status_code != 404 and x)
        assert r.status_code in (502, 503)
        assert httpx.get(stack.gateway.url + "/gateway/health").status_code == 200
