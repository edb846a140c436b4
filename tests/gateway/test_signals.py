"""Per-service load published for the bridge's autoscaler: a real gateway process, the
engine double slowed down so requests stay in flight, the counters on /metrics and in
gateway_signals (one row per service, upserted every interval, never per request)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.gateway_harness import Stack, wait_until
from tests.support.pg import fresh_database


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw-signals"), fresh_database(pg),
              HETEROFLOW_SIGNALS_INTERVAL_S="0.2")
    try:
        yield s
    finally:
        s.close()


def test_in_flight_requests_reach_metrics_and_the_database(stack: Stack) -> None:
    double = stack.double("busy", "busy")
    group = stack.world.add_group("busy")
    group.add_task(double)
    stack.gateway.wait_serving(group.key, "busy")
    double.control(latency_s=3)
    threads = [threading.Thread(target=stack.gateway.chat, args=(group.key, "busy"))
               for _ in range(3)]
    for t in threads:
        t.start()

    def row() -> tuple[Any, ...]:
        rows = stack.world.sql("SELECT sum(inflight), sum(waiting), sum(requests), count(*)"
                               " FROM gateway_signals WHERE group_id = %s", (group.id,))
        return rows[0]

    try:
        wait_until(lambda: row()[0] == 3, timeout=30, what="3 in flight in gateway_signals")
        assert f'heteroflow_gateway_service_inflight{{group="{group.id}"}} 3' in \
            stack.gateway.metrics()
        assert row()[3] == 1  # one row per service and gateway worker
    finally:
        for t in threads:
            t.join(timeout=60)
    double.control(latency_s=0)
    wait_until(lambda: row()[0] == 0, timeout=30, what="none in flight")
    assert row()[1] == 0 and row()[2] >= 4  # wait_serving's request and the three
    alive = stack.world.sql("SELECT count(*) FROM gateway_signals WHERE group_id = ''")
    assert alive[0][0] == 1  # the gateway's own row: alive even without traffic
