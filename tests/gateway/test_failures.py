"""Failures before the first byte (retried) versus after it (an error event, never retried)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway_harness import Double, Group, Stack, wait_until
from tests.support.pg import fresh_database


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A short upstream timeout, so that a hanging backend costs one second.
    s = Stack(tmp_path_factory.mktemp("gw-fail"), fresh_database(pg),
              HETEROFLOW_UPSTREAM_TIMEOUT_S="1", HETEROFLOW_COOLDOWN_S="1.5")
    try:
        yield s
    finally:
        s.close()


def pair(stack: Stack, name: str) -> tuple[Group, Double, Double, str, str]:
    """A group with two backends, round robin; returns the tasks of a and b too."""
    a, b = stack.double(f"{name}-a", name), stack.double(f"{name}-b", name)
    group = stack.world.add_group(name, algorithm="round_robin")
    task_a, task_b = group.add_task(a), group.add_task(b)
    stack.gateway.wait_usable(group.id, 2)
    stack.gateway.wait_serving(group.key, name)
    return group, a, b, task_a, task_b


def sse_events(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]


class TestBeforeFirstByte:
    @pytest.mark.parametrize("mode", ["error500", "close", "status429"])
    def test_streams_are_retried_on_another_backend(self, stack: Stack, mode: str) -> None:
        group, a, _b, _, task_b = pair(stack, f"pre-{mode}")
        a.control(mode=mode)
        a.reset()
        for _ in range(6):
            r = stack.gateway.chat(group.key, group.model, stream=True)
            assert r.status_code == 200, r.text
            assert r.headers["x-heteroflow-backend"] == task_b
            events = sse_events(r)
            assert events[-1] == "[DONE]"
            assert not any(e.startswith("{\"error\"") for e in events)
        # A broken backend got at most the attempts before its cooldown (429: one). A reset
        # on a reused keep-alive connection is retried once on a fresh one (a stale
        # connection looks the same), so "close" may see each attempt twice.
        limit = {"error500": 3, "close": 6, "status429": 1}[mode]
        assert a.stats()["requests"] <= limit

    def test_hanging_backend_times_out_then_retries(self, stack: Stack) -> None:
        group, a, _b, _, task_b = pair(stack, "pre-hang")
        a.control(mode="hang")
        started = time.monotonic()
        responses = [stack.gateway.chat(group.key, group.model) for _ in range(2)]
        assert [r.status_code for r in responses] == [200, 200]
        assert {r.headers["x-heteroflow-backend"] for r in responses} == {task_b}
        assert time.monotonic() - started < 5

    def test_every_backend_failing(self, stack: Stack) -> None:
        group, a, b, _, _ = pair(stack, "all-fail")
        a.control(mode="error500")
        b.control(mode="error500")
        r = stack.gateway.chat(group.key, group.model)
        assert r.status_code == 500  # the upstream's own error, passed through
        assert "is broken" in r.text
        a.control(mode="hang")
        b.control(mode="hang")
        time.sleep(1.7)  # the cooldown from the 500s passes
        r = stack.gateway.chat(group.key, group.model)
        assert r.status_code == 504
        assert r.json()["error"]["code"] == "upstream_timeout"
        a.kill()
        b.kill()
        time.sleep(1.7)
        r = stack.gateway.chat(group.key, group.model)
        assert r.status_code in (502, 503)  # refused, or already out of the pool
        assert r.json()["error"]["code"] in ("upstream_error", "no_healthy_backend")
        wait_until(lambda: stack.gateway.usable(group.id) == 0)
        r = stack.gateway.chat(group.key, group.model)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "no_healthy_backend"
        assert int(r.headers["retry-after"]) >= 1


class TestMidStream:
    def test_death_mid_stream_ends_with_an_error_event_and_no_retry(self, stack: Stack) -> None:
        group, a, b, _task_a, _task_b = pair(stack, "mid")
        a.control(mode="die_mid_stream", die_after=2, tokens=6)
        b.control(mode="die_mid_stream", die_after=2, tokens=6)
        before = a.stats()["requests"] + b.stats()["requests"]
        r = stack.gateway.chat(group.key, group.model, stream=True)
        assert r.status_code == 200
        events = sse_events(r)
        assert len(events) == 3, events  # two tokens, then the error
        error = json.loads(events[-1])["error"]
        assert error["code"] == "upstream_stream_error"
        assert a.stats()["requests"] + b.stats()["requests"] == before + 1  # no retry

        sdk = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=group.key,
                            max_retries=0)
        stream = sdk.chat.completions.create(model=group.model, messages=[], stream=True)
        got = []
        with pytest.raises(openai.APIError):
            for chunk in stream:
                got.append(chunk.choices[0].delta.content)
        assert len(got) == 2
