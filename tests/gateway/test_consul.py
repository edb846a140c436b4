"""Backends from a real Consul 1.8.7 dev agent: registration, health changes, an outage."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway_harness import Consul, Double, Group, Stack, wait_until
from tests.support.pg import fresh_database


@pytest.fixture(scope="module")
def stack(pg: Any, consul: Consul,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw-consul"), fresh_database(pg),
              CONSUL_HTTP_ADDR=consul.addr, HETEROFLOW_CONSUL_WAIT_S="10")
    try:
        yield s
    finally:
        s.close()


def register(consul: Consul, group: Group, double: Double, *, alloc: str | None = None,
             tg: str | None = None) -> str:
    """As Nomad registers a group's service from our jobspec."""
    alloc = alloc or str(uuid.uuid4())
    service_id = f"_nomad-task-{alloc}-engine-hf-{group.name}-http"
    consul.register(f"hf-{group.name}", service_id, "127.0.0.1", double.port,
                    ["heteroflow", f"tg={tg or group.id}", f"model={group.model}",
                     "engine=vllm"], check_url=double.url + "/health")
    return service_id


def first_time(check: Any, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError("condition never held")


class TestConsulPool:
    def test_passing_instances_serve(self, stack: Stack, consul: Consul) -> None:
        a, b = stack.double("c-a", "consul-model"), stack.double("c-b", "consul-model")
        group = stack.world.add_group("c-group", model="consul-model")
        id_a, id_b = register(consul, group, a), register(consul, group, b)
        stack.gateway.wait_usable(group.id, 2)
        served = {stack.gateway.chat(group.key, "consul-model").headers["x-heteroflow-backend"]
                  for _ in range(4)}
        assert served == {id_a, id_b}
        assert stack.gateway.health()["discovery"]["mode"] == "consul"

    def test_health_change_reaches_the_pool_within_a_second(self, stack: Stack,
                                                            consul: Consul) -> None:
        double = stack.double("c-flap", "flap")
        group = stack.world.add_group("c-flap", model="flap")
        register(consul, group, double)
        stack.gateway.wait_usable(group.id, 1)
        stack.gateway.wait_serving(group.key, "flap")

        double.control(healthy=False)
        in_consul = first_time(lambda: not consul.passing(f"hf-{group.name}"))
        in_gateway = first_time(lambda: stack.gateway.usable(group.id) == 0)
        assert in_gateway - in_consul < 1.0
        # Its only backend ejected by a check, the model is still served (panic threshold).
        r = stack.gateway.chat(group.key, "flap")
        assert r.status_code == 200
        assert r.headers["x-heteroflow-panic"] == "1"

        double.control(healthy=True)
        in_consul = first_time(lambda: bool(consul.passing(f"hf-{group.name}")))
        in_gateway = first_time(lambda: stack.gateway.usable(group.id) == 1)
        assert in_gateway - in_consul < 1.0
        assert stack.gateway.chat(group.key, "flap").status_code == 200

    def test_foreign_and_sleeping_instances_are_left_out(self, stack: Stack,
                                                         consul: Consul) -> None:
        mine, asleep = stack.double("c-mine", "mixed"), stack.double("c-asleep", "mixed")
        stranger = stack.double("c-stranger", "mixed")
        group = stack.world.add_group("c-mixed", model="mixed")
        alloc = str(uuid.uuid4())
        group.add_task(asleep, status="sleeping", alloc_id=alloc)
        mine_id = register(consul, group, mine)
        register(consul, group, asleep, alloc=alloc)
        register(consul, group, stranger, tg="tg-someone-else")
        wait_until(lambda: len(consul.passing(f"hf-{group.name}")) == 3)
        stack.gateway.wait_usable(group.id, 1)
        time.sleep(0.5)
        assert stack.gateway.usable(group.id) == 1
        served = {stack.gateway.chat(group.key, "mixed").headers["x-heteroflow-backend"]
                  for _ in range(6)}
        assert served == {mine_id}


class TestConsulUnderLoad:
    def test_a_check_timing_out_while_requests_succeed_keeps_the_instance(
            self, stack: Stack, consul: Consul) -> None:
        busy, idle = stack.double("c-busy", "busy"), stack.double("c-idle", "busy")
        group = stack.world.add_group("c-busy", model="busy")
        id_busy, id_idle = register(consul, group, busy), register(consul, group, idle)
        stack.gateway.wait_usable(group.id, 2)
        stack.gateway.wait_serving(group.key, "busy")
        # Both checks time out (Consul's timeout is 1 s); the pool calls that slow, not dead.
        busy.control(health_delay_s=3)
        idle.control(health_delay_s=3)
        wait_until(lambda: not consul.passing(f"hf-{group.name}"), timeout=30,
                   what="both checks critical in Consul")
        wait_until(lambda: pool(stack, group.id)["verdicts"].get("slow") == 2, timeout=30,
                   what="both instances judged slow")
        served = set()
        for _ in range(20):  # traffic keeps both in: every request an answer, none in panic
            r = stack.gateway.chat(group.key, "busy")
            assert r.status_code == 200, r.text
            assert "x-heteroflow-panic" not in r.headers
            served.add(r.headers["x-heteroflow-backend"])
        assert served == {id_busy, id_idle}
        # A refused request is a dead engine, not a busy one: retried on the other at once.
        # (Consul does not publish a check's new output while its status stays critical, so
        # the request, not the check, tells.)
        idle.kill()
        for _ in range(6):
            r = stack.gateway.chat(group.key, "busy")
            assert r.status_code == 200, r.text
            assert r.headers["x-heteroflow-backend"] == id_busy


def pool(stack: Stack, group_id: str) -> dict[str, Any]:
    result: dict[str, Any] = stack.gateway.health()["pools"].get(group_id, {"verdicts": {}})
    return result


class TestConsulOutage:
    def test_last_pool_is_kept_and_the_outage_reported(self, stack: Stack,
                                                       consul: Consul) -> None:
        double = stack.double("c-out", "outage")
        group = stack.world.add_group("c-out", model="outage")
        register(consul, group, double)
        stack.gateway.wait_usable(group.id, 1)
        stack.gateway.wait_serving(group.key, "outage")

        consul.kill()
        wait_until(lambda: stack.gateway.health()["discovery"]["ok"] is False,
                   what="outage noticed")
        health = stack.gateway.health()
        assert health["status"] == "degraded"
        assert health["discovery"]["error"]
        assert "heteroflow_gateway_discovery_up{mode=\"consul\"} 0" in stack.gateway.metrics()
        for _ in range(5):  # still served from the last known pool
            assert stack.gateway.chat(group.key, "outage").status_code == 200

        consul.restart()  # an empty agent: the service must be registered again
        register(consul, group, double)
        wait_until(lambda: stack.gateway.health()["discovery"]["ok"] is True, timeout=15,
                   what="consul back")
        stack.gateway.wait_serving(group.key, "outage")
        assert "heteroflow_gateway_discovery_up{mode=\"consul\"} 1" in stack.gateway.metrics()
        assert httpx.get(stack.gateway.url + "/gateway/health").json()["status"] == "ok"
