"""A bound on the time to the first byte of every upstream attempt, per route: an engine
that stops answering (SIGSTOP) costs a request that bound, then another backend serves it."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.gateway_harness import Stack, wait_until
from tests.support.pg import fresh_database


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The gateway's defaults (600 s upstream, 300 s to the first byte): the route's own
    # bound is what ends the wait.
    s = Stack(tmp_path_factory.mktemp("gw-ttfb"), fresh_database(pg))
    try:
        yield s
    finally:
        s.close()


def test_a_stopped_engine_costs_the_routes_bound_then_another_serves(stack: Stack) -> None:
    a, b = stack.double("ttfb-a", "ttfb"), stack.double("ttfb-b", "ttfb")
    group = stack.world.add_group("ttfb")
    task_a, task_b = group.add_task(a), group.add_task(b)
    stack.world.update_route(group.route_id, first_byte_timeout_s=1.0)
    stack.gateway.wait_usable(group.id, 2)
    wait_until(lambda: {stack.gateway.chat(group.key, "ttfb").headers[
        "x-heteroflow-backend"] for _ in range(4)} == {task_a, task_b}, timeout=30,
        what="both backends serving")
    a.proc.send_signal(signal.SIGSTOP)
    try:
        for stream in (False, True, False, True):
            r = stack.gateway.chat(group.key, "ttfb", stream=stream)
            assert r.status_code == 200, r.text
            assert r.headers["x-heteroflow-backend"] == task_b
        timeouts = (f'heteroflow_gateway_upstream_errors_total{{pool="{group.id}",'
                    f'backend="{task_a}",kind="timeout"}}')
        assert timeouts in stack.gateway.metrics()
        # With nothing else to try, the bound ends the request with a 504.
        b.proc.send_signal(signal.SIGSTOP)
        r = stack.gateway.chat(group.key, "ttfb")
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "upstream_timeout"
    finally:
        a.proc.send_signal(signal.SIGCONT)
        b.proc.send_signal(signal.SIGCONT)
