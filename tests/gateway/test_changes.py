"""Changes made in the database (as the REST API makes them) take effect without a restart:
key revocation within seconds, route and task changes within 2 s, at default intervals."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.gateway_harness import Proc, Stack, wait_until
from tests.support.pg import free_port, fresh_database


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The production defaults for propagation (1 s), not the fast test ones.
    s = Stack(tmp_path_factory.mktemp("gw-changes"), fresh_database(pg),
              HETEROFLOW_REFRESH_INTERVAL_S="1", HETEROFLOW_KEY_RECHECK_INTERVAL_S="1")
    try:
        yield s
    finally:
        s.close()


def seconds_until(check: Any, timeout: float = 10.0) -> float:
    started = time.monotonic()
    wait_until(check, timeout=timeout, interval=0.02)
    return time.monotonic() - started


class TestKeys:
    def test_new_key_works_at_once_and_revocation_within_seconds(self, stack: Stack) -> None:
        double = stack.double("k", "keys")
        group = stack.world.add_group("keys")
        group.add_task(double)
        stack.gateway.wait_serving(group.key, "keys")
        fresh = stack.world.add_key(group.endpoint_id)
        assert stack.gateway.chat(fresh, "keys").status_code == 200  # no wait for a refresh
        stack.world.revoke(fresh)
        took = seconds_until(lambda: stack.gateway.chat(fresh, "keys").status_code == 401)
        assert took < 2.5
        r = stack.gateway.chat(fresh, "keys")
        assert r.json()["error"]["code"] == "invalid_api_key"
        assert stack.gateway.chat(group.key, "keys").status_code == 200  # others unaffected


class TestRoutes:
    def test_weights_status_and_new_models_within_two_seconds(self, stack: Stack) -> None:
        one, two = stack.double("r-1", "r-1"), stack.double("r-2", "r-2")
        g1 = stack.world.add_group("r-1", route=False)
        g2 = stack.world.add_group("r-2", route=False)
        g1.add_task(one)
        g2.add_task(two)
        r1 = stack.world.add_route("moving", group_id=g1.id, weight=100, version="old")
        r2 = stack.world.add_route("moving", group_id=g2.id, weight=0, version="new")
        stack.gateway.wait_usable(g2.id, 1)
        stack.gateway.wait_serving(g1.key, "moving")

        def version() -> str:
            return str(stack.gateway.chat(g1.key, "moving").headers.get(
                "x-heteroflow-route-version"))

        assert version() == "old"
        stack.world.update_route(r1, weight=0)
        stack.world.update_route(r2, weight=100)
        assert seconds_until(lambda: version() == "new") < 2.0

        stack.world.update_route(r2, status="inactive")
        stack.world.update_route(r1, status="inactive")
        assert seconds_until(lambda: stack.gateway.chat(g1.key, "moving").status_code
                             == 404) < 2.0

        stack.world.add_route("brand-new", group_id=g1.id)
        assert seconds_until(lambda: stack.gateway.chat(g1.key, "brand-new").status_code
                             == 200) < 2.0

    def test_tasks_joining_and_leaving(self, stack: Stack) -> None:
        a, b = stack.double("j-a", "join"), stack.double("j-b", "join")
        group = stack.world.add_group("join")
        task_a = group.add_task(a)
        stack.gateway.wait_serving(group.key, "join")
        task_b = group.add_task(b)
        assert seconds_until(lambda: stack.gateway.usable(group.id) == 2) < 2.0
        stack.world.set_task(task_a, status="stopping")
        assert seconds_until(lambda: stack.gateway.usable(group.id) == 1) < 2.0
        backends = {stack.gateway.chat(group.key, "join").headers["x-heteroflow-backend"]
                    for _ in range(4)}
        assert backends == {task_b}


class TestDatabaseDown:
    def test_unreachable_database_is_reported_not_hung(self, tmp_path: Path) -> None:
        url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing?connect_timeout=1"
        port = free_port()
        proc = Proc([sys.executable, "-m", "gateway"], tmp_path / "gw.log", env={
            "HETEROFLOW_DATABASE_URL": url, "HETEROFLOW_PORT": str(port),
            "HETEROFLOW_HOME": str(tmp_path), "CONSUL_HTTP_ADDR": ""})
        try:
            base = f"http://127.0.0.1:{port}"
            health = wait_until(lambda: (r := httpx.get(base + "/gateway/health")).status_code
                                == 503 and r.json(), what="health while the database is down")
            assert health["status"] == "degraded" and health["database"]["ok"] is False
            started = time.monotonic()
            r = httpx.post(base + "/v1/chat/completions", timeout=30,
                           headers={"Authorization": "Bearer sk-unknown"},
                           json={"model": "m", "messages": []})
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "key_store_unavailable"
            assert r.headers["retry-after"]
            assert time.monotonic() - started < 10
        finally:
            proc.stop()
