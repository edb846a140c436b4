"""Several workers: each serves with its own pool and caches; /metrics adds them all up."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway_harness import Stack, wait_until
from tests.support.pg import fresh_database


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw-workers"), fresh_database(pg),
              HETEROFLOW_WORKERS="2")
    try:
        yield s
    finally:
        s.close()


def served_total(text: str, model: str) -> float:
    match = re.search(rf'^heteroflow_gateway_requests_total\{{model="{model}",status="200"\}} '
                      r"(\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_two_workers_serve_and_metrics_add_up(stack: Stack) -> None:
    double = stack.double("workers", "workers")
    group = stack.world.add_group("workers")
    group.add_task(double)
    # each worker has its own snapshot and pool: wait until both serve
    wait_until(lambda: all(stack.gateway.chat(group.key, "workers").status_code == 200
                           for _ in range(6)), timeout=15, what="both workers serving")
    double.reset()
    for _ in range(40):
        with httpx.Client() as fresh:  # a new connection each time, spread over workers
            r = fresh.post(stack.gateway.url + "/v1/chat/completions",
                           headers={"Authorization": f"Bearer {group.key}"},
                           json={"model": "workers", "messages": []})
            assert r.status_code == 200
    assert double.stats()["requests"] == 40
    time.sleep(1.5)  # one export interval
    totals = {served_total(stack.gateway.metrics(), "workers") for _ in range(6)}
    # whichever worker answers the scrape, it reports the sum over both workers
    assert len(totals) == 1, totals
    assert totals.pop() >= 40
    assert 'heteroflow_gateway_pool_backends{pool="' + group.id + '",state="usable"} 1' in (
        stack.gateway.metrics())
