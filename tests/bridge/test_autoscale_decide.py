"""The autoscaler's decision as a table: every metric, delays, cooldown, bounds, pending
replicas, missing metrics and rollouts in progress (bridge/domain/autoscale.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.domain.autoscale import UNITS, Inputs, decide
from bridge.domain.measure import Replica, sample

BASE = Inputs(metric="concurrent_requests", target=4.0, value=4.0, missing="", replicas=2,
              pending=0, min_replicas=1, max_replicas=4, cooldown_s=60, up_delay_s=60,
              down_delay_s=300, now=1000.0, high_since=None, low_since=None,
              last_scaled_at=None)

# (name, changes, expected replicas, words the sentence must hold)
CASES = [
    ("steady at target", {}, None, "steady: 4 requests in flight per replica = target 4"),
    ("high, first seen: delay starts", {"value": 7.5}, None, "for 0 of 60 s"),
    ("high for the delay: +1", {"value": 7.5, "high_since": 940.0}, 3,
     "scaled 2 -> 3: 7.5 requests in flight per replica > target 4 for 60 s"),
    ("high but in cooldown", {"value": 7.5, "high_since": 900.0, "last_scaled_at": 980.0},
     None, "the last move was 20 s ago (cooldown 60 s)"),
    ("high at max", {"value": 9.0, "high_since": 0.0, "max_replicas": 2}, None,
     "already at the maximum of 2"),
    ("high, no max (0)", {"value": 9.0, "high_since": 0.0, "max_replicas": 0,
                          "replicas": 40}, 41, "scaled 40 -> 41"),
    ("high, a replica pending", {"value": 9.0, "high_since": 0.0, "pending": 1}, None,
     "1 replica is still pending"),
    ("low, first seen", {"value": 1.0}, None, "for 0 of 300 s"),
    ("low for 4 minutes", {"value": 1.0, "low_since": 760.0}, None, "for 240 of 300 s"),
    ("low for 5 minutes: -1", {"value": 1.0, "low_since": 700.0}, 1,
     "scaled 2 -> 1: 1 requests in flight per replica < target 4 for 300 s"),
    ("low but one fewer would exceed", {"value": 3.0, "low_since": 0.0}, None,
     "1 replicas would carry 6 each"),
    ("low at min", {"value": 0.0, "replicas": 1, "low_since": 0.0}, None,
     "at the minimum of 1"),
    ("low in cooldown", {"value": 0.0, "low_since": 0.0, "last_scaled_at": 990.0}, None,
     "cooldown 60 s"),
    ("missing metric", {"value": None, "missing": "no gateway has published"}, None,
     "concurrent_requests is missing (no gateway has published); a missing metric is "
     "never acted on"),
    ("missing, even above max is fixed first", {"value": None, "missing": "x",
                                                "replicas": 6}, 4, "above the maximum"),
    ("below min (a window raised it)", {"min_replicas": 3}, 3, "below the minimum of 3"),
    ("rollout in progress", {"value": 9.0, "high_since": 0.0,
                             "rollout": "Nomad deployment d-1 is running"}, None,
     "not scaled: Nomad deployment d-1 is running; waiting until it ends"),
]


@pytest.mark.parametrize(("name", "changes", "expected", "words"), CASES,
                         ids=[c[0] for c in CASES])
def test_decision_table(name: str, changes: dict[str, object], expected: int | None,
                        words: str) -> None:
    d = decide(replace(BASE, **changes))  # type: ignore[arg-type]
    assert d.replicas == expected, d.reason
    assert words in d.reason, d.reason


def test_delays_are_carried_between_rounds() -> None:
    first = decide(replace(BASE, value=9.0))
    assert first.high_since == 1000.0 and first.low_since is None
    second = decide(replace(BASE, value=9.0, now=1030.0, high_since=first.high_since))
    assert second.replicas is None and "for 30 of 60 s" in second.reason
    third = decide(replace(BASE, value=9.0, now=1060.0, high_since=second.high_since))
    assert third.replicas == 3
    # a dip below the target resets the high timer
    dip = decide(replace(BASE, value=1.0, now=1030.0, high_since=1000.0))
    assert dip.high_since is None and dip.low_since == 1030.0


@pytest.mark.parametrize("metric", sorted(UNITS))
def test_every_metric_names_its_unit(metric: str) -> None:
    d = decide(replace(BASE, metric=metric, value=9.0, high_since=0.0))
    assert d.replicas == 3 and UNITS[metric] in d.reason


def test_samples_per_metric_and_missing_reasons() -> None:
    gpu = Replica("t0", "n1", ("0",), {"waiting": 6.0,
                                        "running": 2.0})
    bare = Replica("t1", "n1", ("1",), None)
    nodes = {"n1": ([{"index": 0, "utilization_percent": 80.0},
                     {"index": 1, "utilization_percent": None}], {"cpu_percent": 50})}
    args = {"gateways": 1, "inflight": 6, "waiting": 2, "nodes": nodes}
    assert sample("concurrent_requests", [gpu, bare], **args).value == 3.0  # type: ignore[arg-type]
    assert sample("request_queue", [gpu, bare], **args).value == 1.0  # type: ignore[arg-type]
    assert sample("vllm_pending_requests", [gpu], **args).value == 6.0  # type: ignore[arg-type]
    assert sample("vllm_running_requests", [gpu], **args).value == 2.0  # type: ignore[arg-type]
    assert sample("gpu_utilization", [gpu], **args).value == 80.0  # type: ignore[arg-type]
    assert sample("cpu", [gpu, bare], **args).value == 50.0  # type: ignore[arg-type]
    missing = sample("vllm_pending_requests", [gpu, bare], **args)  # type: ignore[arg-type]
    assert missing.value is None and "t1: its engine reports no waiting requests" in missing.missing
    assert "GPU 1" in (sample("gpu_utilization", [bare], **args).missing)  # type: ignore[arg-type]
    assert "no gateway" in sample("concurrent_requests", [gpu], gateways=0, inflight=0,
                                  waiting=0, nodes={}).missing
    assert sample("cpu", [], **args).missing == "no replica is running"  # type: ignore[arg-type]
