"""Schedule windows with an injected clock: weekday edges, midnight, the DST jumps of
Europe/Berlin and America/New_York, overlap, cron windows, and manual scale inside and
outside a window (bridge/domain/windows.py, bridge/domain/policy_plan.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from bridge.domain import policy_plan
from bridge.domain.status import TaskStatus
from bridge.domain.windows import parse_schedule, phase, window_refusal


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def sched(*windows: dict[str, Any], **outside: Any) -> Any:
    schedule = parse_schedule({"windows": list(windows), **outside})
    assert schedule is not None
    return schedule


WORKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00",
            "timezone": "Europe/Berlin"}


@pytest.mark.parametrize(("now", "inside", "next_change"), [
    # Friday 2026-03-27 (CET, +01:00): 09:00-17:00 local is 08:00-16:00 UTC
    ("2026-03-27T07:59:59Z", False, "2026-03-27T08:00:00Z"),
    ("2026-03-27T08:00:00Z", True, "2026-03-27T16:00:00Z"),
    ("2026-03-27T15:59:59Z", True, "2026-03-27T16:00:00Z"),
    ("2026-03-27T16:00:00Z", False, "2026-03-30T07:00:00Z"),  # Monday, now CEST (+02:00)
    ("2026-03-28T12:00:00Z", False, "2026-03-30T07:00:00Z"),  # Saturday: no window
    ("2026-03-30T07:00:00Z", True, "2026-03-30T15:00:00Z"),  # 09:00 CEST after the jump
])
def test_weekday_edges_across_the_berlin_spring_change(now: str, inside: bool,
                                                       next_change: str) -> None:
    p = phase(sched(WORKDAYS), utc(now))
    assert (p.inside, p.next_change) == (inside, utc(next_change)), p.words


def test_a_night_window_crosses_midnight_into_the_next_day() -> None:
    night = sched({"days": ["fri"], "start": "22:00", "end": "06:00", "timezone": "UTC"})
    assert phase(night, utc("2026-06-05T21:59:00Z")).inside is False  # Friday
    p = phase(night, utc("2026-06-06T00:00:00Z"))  # Saturday midnight: still Friday's night
    assert p.inside and p.next_change == utc("2026-06-06T06:00:00Z")
    p = phase(night, utc("2026-06-06T06:00:00Z"))
    assert not p.inside and p.next_change == utc("2026-06-12T22:00:00Z")
    assert phase(night, utc("2026-06-06T23:00:00Z")).inside is False  # Saturday night: no


def test_berlin_spring_forward_a_skipped_start_happens_at_the_jump() -> None:
    # 2026-03-29 02:00 CET -> 03:00 CEST: 02:30 does not exist that day.
    early = sched({"start": "02:30", "end": "04:00", "timezone": "Europe/Berlin"})
    p = phase(early, utc("2026-03-29T00:30:00Z"))
    assert not p.inside and p.next_change == utc("2026-03-29T01:00:00Z")  # 03:00 CEST
    p = phase(early, utc("2026-03-29T01:00:00Z"))
    assert p.inside and p.next_change == utc("2026-03-29T02:00:00Z")  # 04:00 CEST


def test_berlin_fall_back_a_repeated_time_counts_once() -> None:
    # 2026-10-25 03:00 CEST -> 02:00 CET: 02:30 happens twice; the first one counts.
    early = sched({"start": "02:30", "end": "03:30", "timezone": "Europe/Berlin"})
    p = phase(early, utc("2026-10-25T00:00:00Z"))
    assert p.next_change == utc("2026-10-25T00:30:00Z")  # 02:30 CEST
    p = phase(early, utc("2026-10-25T00:30:00Z"))
    assert p.inside and p.next_change == utc("2026-10-25T02:30:00Z")  # 03:30 CET: 2 h long


@pytest.mark.parametrize(("now", "inside", "next_change"), [
    # America/New_York 2026-03-08 02:00 EST -> 03:00 EDT; 08:00-20:00 local
    ("2026-03-07T13:00:00Z", True, "2026-03-08T01:00:00Z"),  # Saturday 08:00 EST
    ("2026-03-08T01:00:00Z", False, "2026-03-08T12:00:00Z"),  # Sunday 08:00 is EDT now
    ("2026-11-01T12:00:00Z", False, "2026-11-01T13:00:00Z"),  # 1 Nov: back to EST
])
def test_new_york_both_changes(now: str, inside: bool, next_change: str) -> None:
    day = sched({"start": "08:00", "end": "20:00", "timezone": "America/New_York"})
    p = phase(day, utc(now))
    assert (p.inside, p.next_change) == (inside, utc(next_change)), p.words


def test_overlapping_windows_are_one_union() -> None:
    both = sched({"start": "08:00", "end": "12:00", "timezone": "UTC"},
                 {"start": "11:00", "end": "14:00", "timezone": "UTC"},
                 {"cron": "0 13 * * *", "duration_minutes": 120, "timezone": "UTC"})
    p = phase(both, utc("2026-06-01T09:00:00Z"))
    assert p.inside and p.next_change == utc("2026-06-01T15:00:00Z")


def test_cron_window_in_a_zone_with_dst() -> None:
    # Friday 22:00 New York for 10 hours: the window is 10 elapsed hours.
    fri = sched({"cron": "0 22 * * fri", "duration_minutes": 600,
                 "timezone": "America/New_York"})
    p = phase(fri, utc("2026-03-07T04:00:00Z"))
    assert p.inside and p.next_change == utc("2026-03-07T13:00:00Z")
    p = phase(fri, utc("2026-03-07T13:00:00Z"))
    assert not p.inside and p.next_change == utc("2026-03-14T02:00:00Z")  # EDT now


def group(window: dict[str, Any] | None, *, tasks: int = 2, status: TaskStatus =
          TaskStatus.RUNNING) -> Any:
    return SimpleNamespace(
        id="tg-1", schedule_window=window, min_replicas=1, max_replicas=4,
        tasks=[SimpleNamespace(id=f"t{i}", status=status) for i in range(tasks)])


OFFICE_3 = {"windows": [WORKDAYS], "outside": "replicas", "outside_replicas": 3}


def test_manual_scale_inside_and_outside_a_window() -> None:
    inside, outside = utc("2026-03-27T10:00:00Z"), utc("2026-03-27T20:00:00Z")
    g = group(OFFICE_3)
    assert window_refusal(g, 4, inside) is None  # inside: the service's own bounds
    assert window_refusal(g, 3, outside) is None
    why = window_refusal(g, 2, outside)
    assert why and "outside its schedule windows the service runs 3" in why
    assert window_refusal(group(None), 2, outside) is None


def test_the_window_sets_the_bounds_the_autoscaler_moves_inside() -> None:
    schedule = parse_schedule(OFFICE_3)
    g = group(OFFICE_3)
    assert policy_plan.bounds(g, schedule, phase(schedule, utc("2026-03-27T10:00:00Z")))[:2] \
        == (1, 4)
    assert policy_plan.bounds(g, schedule, phase(schedule, utc("2026-03-27T20:00:00Z")))[:2] \
        == (3, 3)


def test_sleep_outside_acts_on_transitions_only() -> None:
    window = {"windows": [WORKDAYS], "outside": "sleep"}
    schedule = parse_schedule(window)
    inside = phase(schedule, utc("2026-03-27T10:00:00Z"))  # type: ignore[arg-type]
    outside = phase(schedule, utc("2026-03-27T20:00:00Z"))  # type: ignore[arg-type]
    running, asleep = group(window), group(window, status=TaskStatus.SLEEPING)
    assert policy_plan.window_actions(running, schedule, True, outside) == (("t0", "t1"), ())
    assert policy_plan.window_actions(asleep, schedule, False, inside) == ((), ("t0", "t1"))
    # a request woke it outside the window: the window leaves it be until its next change
    assert policy_plan.window_actions(running, schedule, False, outside) == ((), ())
    # first look at a service already outside: it goes to sleep
    assert policy_plan.window_actions(running, schedule, None, outside) == (("t0", "t1"), ())
    assert replace(inside, inside=True).inside
