"""Health that does not flap: a slow probe is judged apart from a refused connection, real
request outcomes count, and a model whose every backend is ejected is still served."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.gateway_harness import Stack, wait_until
from tests.support.pg import fresh_database

# Probes that time out long before the double answers them once it is told to be slow.
SLOW_PROBE = {"type": "http", "path": "/health", "interval_seconds": 0.2,
              "timeout_seconds": 0.3, "unhealthy_threshold": 1}


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw-health"), fresh_database(pg),
              HETEROFLOW_BUSY_GRACE_S="5")
    try:
        yield s
    finally:
        s.close()


def pool(stack: Stack, group_id: str) -> dict[str, Any]:
    result: dict[str, Any] = stack.gateway.health()["pools"].get(group_id, {"verdicts": {}})
    return result


def test_busy_backend_serves_then_panic_then_refused(stack: Stack) -> None:
    double = stack.double("busy", "busy")
    group = stack.world.add_group("busy", health=SLOW_PROBE)
    group.add_task(double)
    stack.gateway.wait_usable(group.id, 1)
    stack.gateway.wait_serving(group.key, "busy")

    # The engine is too busy to answer its probe in time, yet answers every request.
    double.control(health_delay_s=5)

    def slow_while_serving() -> bool:
        r = stack.gateway.chat(group.key, "busy")
        assert r.status_code == 200, r.text
        return bool(pool(stack, group.id)["verdicts"].get("slow"))

    wait_until(slow_while_serving, timeout=30, what="the probe judged slow")
    for _ in range(20):
        r = stack.gateway.chat(group.key, "busy")
        assert r.status_code == 200, r.text
        assert "x-heteroflow-panic" not in r.headers  # usable on its requests' evidence
    assert pool(stack, group.id)["usable"] == 1

    # The engine says it is unhealthy: ejected, yet served (panic) rather than refused.
    double.control(health_delay_s=0, healthy=False)
    wait_until(lambda: pool(stack, group.id)["verdicts"].get("failing") == 1, timeout=30,
               what="the backend judged failing")
    assert pool(stack, group.id)["usable"] == 0
    r = stack.gateway.chat(group.key, "busy")
    assert r.status_code == 200, r.text
    assert r.headers["x-heteroflow-panic"] == "1"
    assert 'heteroflow_gateway_panic_routed_total{model="busy"}' in stack.gateway.metrics()

    # A refused connection is an engine that is gone: no panic, a clear 503.
    double.kill()
    wait_until(lambda: pool(stack, group.id)["verdicts"].get("refused") == 1, timeout=30,
               what="the dead backend judged refused")
    r = stack.gateway.chat(group.key, "busy")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "no_healthy_backend"
    assert int(r.headers["retry-after"]) >= 1


def test_panic_spares_a_lower_tier_that_is_healthy(stack: Stack) -> None:
    """Panic is the last resort of the whole model: a healthy tier 1 serves first."""
    primary, backup = stack.double("p-primary", "spill"), stack.double("p-backup", "spill")
    first = stack.world.add_group("p-first", model="spill", route=False)
    second = stack.world.add_group("p-second", model="spill", route=False)
    first.add_task(primary)
    second.add_task(backup)
    stack.world.add_route("spill", group_id=first.id, priority=0, version="p0")
    stack.world.add_route("spill", group_id=second.id, priority=1, version="p1")
    stack.gateway.wait_usable(first.id, 1)
    stack.gateway.wait_usable(second.id, 1)
    wait_until(lambda: stack.gateway.chat(first.key, "spill")
               .headers.get("x-heteroflow-route-version") == "p0", what="tier 0 serving")
    primary.control(healthy=False)
    stack.gateway.wait_usable(first.id, 0)
    wait_until(lambda: stack.gateway.usable(first.id) == 0, what="tier 0 ejected")
    for _ in range(5):
        r = stack.gateway.chat(first.key, "spill")
        assert r.status_code == 200
        assert r.headers["x-heteroflow-route-version"] == "p1"
        assert "x-heteroflow-panic" not in r.headers
    backup.control(healthy=False)
    wait_until(lambda: stack.gateway.usable(second.id) == 0, what="tier 1 ejected")
    r = stack.gateway.chat(first.key, "spill")
    assert r.status_code == 200
    assert r.headers["x-heteroflow-route-version"] == "p0"  # panic follows the plan's order
    assert r.headers["x-heteroflow-panic"] == "1"
