"""Canaries on trial get their share of a group's first attempts (the bridge's record of the
rollout), and a retry goes to the other kind."""

from __future__ import annotations

import math

from gateway.domain import Group, HealthSpec, Route, build_snapshot
from gateway.pool import PASSING, BackendPool, Member
from gateway.routing.select import plan
from gateway.store import canary_percent


def _setup(share: int | None) -> tuple[BackendPool, tuple]:
    pool = BackendPool(cooldown_s=5, failures_before_cooldown=3)
    pool.set_members("g", [Member("old-0", "127.0.0.1:10001", verdict=PASSING),
                           Member("old-1", "127.0.0.1:10002", verdict=PASSING),
                           Member("new-0", "127.0.0.1:10003", verdict=PASSING, canary=True)],
                     canary_percent=share)
    group = Group(id="g", name="g", model_name="m", status="running",
                  algorithm="round_robin", health=HealthSpec(), endpoint_id=None)
    snap = build_snapshot([group], [Route(id="r", model_name="m", version="v1", priority=0,
                                          weight=100, algorithm="round_robin",
                                          served_model="m", group_id="g")])
    return pool, snap.tiers["m"]


def test_first_attempts_go_to_the_canary_at_its_share() -> None:
    pool, tiers = _setup(30)
    n = 4000
    firsts = [next(plan(tiers, pool, {}, 0.0))[1].id for _ in range(n)]
    canary = firsts.count("new-0")
    sd = math.sqrt(n * 0.3 * 0.7)
    assert abs(canary - 0.3 * n) < 5 * sd, canary  # 5 sd: never flaky, still a real bound
    assert {"old-0", "old-1"} <= set(firsts)


def test_a_retry_goes_to_the_other_kind_and_all_are_tried() -> None:
    pool, tiers = _setup(99)
    for _ in range(50):
        order = [b.id for _, b in plan(tiers, pool, {}, 0.0)]
        assert sorted(order) == ["new-0", "old-0", "old-1"]
        if order[0] == "new-0":
            assert order[1].startswith("old-")


def test_without_a_trial_the_canary_flag_changes_nothing() -> None:
    pool, tiers = _setup(None)
    n = 3000
    canary = [next(plan(tiers, pool, {}, 0.0))[1].id for _ in range(n)].count("new-0")
    assert abs(canary - n / 3) < 5 * math.sqrt(n * (1 / 3) * (2 / 3))


def test_the_share_is_read_from_a_rollout_waiting_on_its_canaries() -> None:
    trial = {"canary": 1, "canary_percent": 25, "done": False}
    assert canary_percent(trial) == 25
    for over in ({"promoted": True}, {"done": True}, {"abandoned": True}, {"canary": 0}):
        assert canary_percent({**trial, **over}) is None
    assert canary_percent(None) is None
