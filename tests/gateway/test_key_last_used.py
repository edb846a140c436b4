"""A key's ``last_used_at`` follows its use, written with the usage batch (not per request)."""

from __future__ import annotations

from datetime import datetime

from tests.support.gateway_harness import Stack, wait_until


def test_last_used_at_moves_with_use(stack: Stack) -> None:
    double = stack.double("used", "used")
    group = stack.world.add_group("used")
    group.add_task(double)
    idle = stack.world.add_key(group.endpoint_id)
    stack.gateway.wait_usable(group.id, 1)
    stack.gateway.wait_serving(group.key, "used")

    def last_used(key: str) -> datetime | None:
        value: datetime | None = stack.world.sql(
            "SELECT last_used_at FROM api_keys WHERE id = %s", (stack.world.key_id(key),))[0][0]
        return value

    first = wait_until(lambda: last_used(group.key), what="last_used_at set")
    assert last_used(idle) is None  # a key nobody used stays unused
    for _ in range(5):
        assert stack.gateway.chat(group.key, "used").status_code == 200
    wait_until(lambda: (t := last_used(group.key)) is not None and t > first,
               what="last_used_at moved on")
