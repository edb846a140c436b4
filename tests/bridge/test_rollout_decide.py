"""decide_rollout(), the local rollout's pure steps, as tables: surge, stop-then-start,
recreate, drain, and the failures that roll a version back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.domain.models import Task
from bridge.domain.status import TaskStatus
from bridge.domain.versions import Rollout, Strategy
from bridge.placement.local.rollout import (
    Add,
    Complete,
    Drain,
    Fail,
    Stop,
    Timing,
    decide_rollout,
)
from tests.support.factories import make_task_group

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TIMING = Timing(settle_s=3.0, drain_s=10.0)
T = TaskStatus


def task(rank: int, version: int, status: T = T.RUNNING, age: float = 60.0,
         created: float | None = None, reason: str = "") -> Task:
    return Task(id=f"t{rank}", group_id="g", rank=rank, status=status, status_reason=reason,
                image="i", gpu_required=0, gpu_type=None, gpu_id=None, node_id="n",
                model_path="/m", ports=[], volumes=[], estimated_gpu_memory_mb=None,
                created_at=NOW - timedelta(seconds=created if created is not None else age),
                updated_at=NOW - timedelta(seconds=age), version=version)


def rollout(strategy: Strategy = Strategy.ROLLING, parallel: int = 1, replicas: int = 2,
            surge: bool = True) -> Rollout:
    return Rollout(strategy=strategy, max_parallel=parallel, replicas=replicas,
                   from_version=1, to_version=2, healthy_deadline_s=300, surge=surge)


def steps(tasks: list[Task], r: Rollout | None = None) -> list[object]:
    group = make_task_group(version=2, tasks=tasks)
    return decide_rollout(group, r or rollout(), NOW, TIMING)


def test_rolling_with_room_starts_a_new_replica_beside_the_old_ones() -> None:
    assert steps([task(0, 1), task(1, 1)]) == [Add(1)]


def test_a_new_replica_is_waited_for_until_it_settled_in_the_pool() -> None:
    assert steps([task(0, 1), task(1, 1), task(2, 2, T.STARTING, age=1)]) == []
    assert steps([task(0, 1), task(1, 1), task(2, 2, age=1)]) == []  # running, not settled
    old0 = task(0, 1)
    assert steps([old0, task(1, 1), task(2, 2, age=5)]) == [
        Drain(old0, "draining: replaced by version 2")]


def test_a_drained_replica_stops_after_the_drain_bound_and_the_next_one_starts() -> None:
    draining = task(0, 1, T.STOPPING, age=4)
    assert steps([draining, task(1, 1), task(2, 2)]) == []
    done = task(0, 1, T.STOPPING, age=11)
    assert steps([done, task(1, 1), task(2, 2)]) == [Stop(done)]
    assert steps([task(1, 1), task(2, 2)]) == [Add(1)]


def test_complete_when_every_replica_runs_the_new_version() -> None:
    assert steps([task(2, 2), task(3, 2)]) == [Complete("version 2 on all 2 replicas")]
    assert steps([task(2, 2), task(3, 2, age=1)]) == []  # not settled yet


def test_without_room_for_a_surge_it_stops_then_starts() -> None:
    r = rollout(surge=False)
    old0, old1 = task(0, 1), task(1, 1)
    assert steps([old0, old1], r) == [Drain(old0, "draining: making room for version 2")]
    assert steps([task(0, 1, T.STOPPING, age=2), old1], r) == []
    assert steps([old1], r) == [Add(1)]
    assert steps([old1, task(2, 2, T.STARTING, age=1)], r) == []
    assert steps([old1, task(2, 2)], r) == [Drain(old1, "draining: making room for version 2")]


def test_recreate_drains_every_replica_then_starts_them_all() -> None:
    r = rollout(Strategy.RECREATE)
    old0, old1 = task(0, 1), task(1, 1)
    assert steps([old0, old1], r) == [Drain(old0, "draining: making room for version 2"),
                                      Drain(old1, "draining: making room for version 2")]
    assert steps([], r) == [Add(2)]


def test_max_parallel_replaces_several_at_once() -> None:
    r = rollout(parallel=2, replicas=4)
    old = [task(i, 1) for i in range(4)]
    assert steps(old, r) == [Add(2)]
    ready = [task(4, 2), task(5, 2)]
    assert steps(old + ready, r) == [Drain(old[0], "draining: replaced by version 2"),
                                     Drain(old[1], "draining: replaced by version 2")]


def test_a_failed_or_late_new_replica_fails_the_rollout_with_its_reason() -> None:
    failed = task(2, 2, T.FAILED, reason="exit code 2 (argument error)")
    assert steps([task(0, 1), task(1, 1), failed]) == [
        Fail("replica t2 of version 2 failed: exit code 2 (argument error)")]
    late = task(2, 2, T.STARTING, age=1, created=301, reason="loading")
    [fail] = steps([task(0, 1), task(1, 1), late])
    assert isinstance(fail, Fail) and "not healthy within 300 s" in fail.reason


def test_old_replicas_that_serve_nothing_go_at_once() -> None:
    crashed = task(0, 1, T.FAILED)
    assert steps([crashed, task(1, 1)]) == [Stop(crashed), Add(1)]


def test_canaries_start_beside_every_old_replica_and_wait_for_promotion() -> None:
    r = Rollout(strategy=Strategy.ROLLING, max_parallel=1, replicas=2, from_version=1,
                to_version=2, healthy_deadline_s=300, canary=1)
    assert steps([task(0, 1), task(1, 1)], r) == [Add(1)]
    assert steps([task(0, 1), task(1, 1), task(2, 2)], r) == []  # on trial: no drain
    failed = task(2, 2, T.FAILED, reason="crashed")
    [fail] = steps([task(0, 1), task(1, 1), failed], r)
    assert isinstance(fail, Fail)
    promoted = Rollout.from_json({**r.as_json(), "promoted": True})
    old0 = task(0, 1)
    assert steps([old0, task(1, 1), task(2, 2)], promoted) == [
        Drain(old0, "draining: replaced by version 2")]
