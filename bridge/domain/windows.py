"""Schedule windows: when a service runs, evaluated in its IANA time zone. Pure, clock given.

A window is either weekdays + ``start``/``end`` wall times (``end`` at or before ``start``
crosses midnight into the next day, so ``22:00-06:00`` on ``fri`` runs Friday night into
Saturday), or a 5-field cron ``start`` (croniter) plus a ``duration_minutes`` of elapsed time.

Daylight saving: wall times are wall times. A start or end in the hour the clocks skip
(02:30 on the spring-forward day in Berlin) happens at the jump (03:00 local); one in the
hour that repeats (02:30 on the fall-back day) happens at its first occurrence. So a
09:00-17:00 window is 09:00-17:00 local on the days around a change, 7 or 9 hours long
only if it spans the change itself.

Several windows: the service is inside while it is inside any of them (their union); the
window sets the bounds and the autoscaler and a manual scale move inside them
(docs/policies.md). Outside every window the service sleeps or runs ``outside_replicas``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HORIZON = timedelta(days=8)  # a weekly schedule always changes within 8 days
MAX_CRON_STARTS = 600  # per window and direction; past it, "no change within the horizon"
Interval = tuple[datetime, datetime]  # UTC, start < end


@dataclass(frozen=True, slots=True)
class Window:
    timezone: str
    days: tuple[str, ...] = DAYS
    start: str = "00:00"  # HH:MM, or a cron expression when ``cron`` is set
    end: str = "00:00"
    cron: str | None = None
    duration_minutes: int = 0


@dataclass(frozen=True, slots=True)
class Schedule:
    windows: tuple[Window, ...]
    outside: str = "sleep"  # "sleep" or "replicas"
    outside_replicas: int = 0


@dataclass(frozen=True, slots=True)
class Phase:
    inside: bool
    next_change: datetime | None  # UTC; None: not within the horizon
    words: str  # "inside 08:00-18:00 Europe/Berlin until ...", for the status


def parse_schedule(data: dict[str, Any] | None) -> Schedule | None:
    """The stored JSON (PUT .../schedule-window, or the older single window of create)."""
    if not data:
        return None
    raw = data.get("windows")
    items = raw if isinstance(raw, list) else [data]
    windows = tuple(Window(timezone=w.get("timezone", "UTC"),
                           days=tuple(w.get("days") or DAYS), start=w.get("start", "00:00"),
                           end=w.get("end", "00:00"), cron=w.get("cron"),
                           duration_minutes=int(w.get("duration_minutes", 0)))
                    for w in items)
    if not windows:
        return None
    return Schedule(windows, str(data.get("outside", "sleep")),
                    int(data.get("outside_replicas", 0)))


def window_refusal(group: Any, replicas: int, now: datetime) -> str | None:
    """Why a manual scale to ``replicas`` leaves the window's bounds (None: it does not).
    Outside every window with ``outside_replicas`` the count is that number; inside, the
    service's own min/max (checked by the caller) are the bounds."""
    schedule = parse_schedule(group.schedule_window)
    if schedule is None or schedule.outside != "replicas":
        return None
    if phase(schedule, now).inside or replicas == schedule.outside_replicas:
        return None
    return (f"outside its schedule windows the service runs {schedule.outside_replicas} "
            f"replicas; scale inside a window, or change the window")


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a 5-field cron expression (None: it is one)."""
    if len(expr.split()) != 5:
        return "a cron start needs exactly 5 fields (minute hour day month weekday)"
    if not croniter.is_valid(expr):
        return f"{expr!r} is not a valid cron expression"
    return None


def phase(schedule: Schedule, now: datetime) -> Phase:
    """Inside or outside at ``now`` (aware), and when that next changes."""
    merged = _merge(sorted(iv for w in schedule.windows for iv in _intervals(w, now)))
    for start, end in merged:
        if start <= now < end:
            until = None if end >= now + HORIZON else end
            return Phase(True, until, "inside a window" + (
                f" until {until.isoformat()}" if until else " (no end within 8 days)"))
        if start > now:
            return Phase(False, start, f"outside every window until {start.isoformat()}")
    return Phase(False, None, "outside every window (none opens within 8 days)")


def _intervals(w: Window, now: datetime) -> list[Interval]:
    zone = ZoneInfo(w.timezone)
    if w.cron:
        return _cron_intervals(w, zone, now)
    local_today = now.astimezone(zone).date()
    start_t, end_t = _hhmm(w.start), _hhmm(w.end)
    out: list[Interval] = []
    for offset in range(-8, 9):
        day = local_today + timedelta(days=offset)
        if DAYS[day.weekday()] not in w.days:
            continue
        end_day = day if end_t > start_t else day + timedelta(days=1)
        start, end = _at(day, start_t, zone), _at(end_day, end_t, zone)
        if start < end:
            out.append((start, end))
    return out


def _cron_intervals(w: Window, zone: ZoneInfo, now: datetime) -> list[Interval]:
    assert w.cron is not None
    length = timedelta(minutes=w.duration_minutes)
    base = now.astimezone(zone)
    out: list[Interval] = []
    back = croniter(w.cron, base)
    for _ in range(MAX_CRON_STARTS):
        start = back.get_prev(datetime)
        if start + length <= now - HORIZON:
            break
        out.append((start, start + length))
    ahead = croniter(w.cron, base)
    for _ in range(MAX_CRON_STARTS):
        start = ahead.get_next(datetime)
        if start > now + HORIZON:
            break
        out.append((start, start + length))
    return [(s.astimezone(ZoneInfo("UTC")), e.astimezone(ZoneInfo("UTC"))) for s, e in out]


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _at(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall time on a local day (see the module's DST rule)."""
    utc = ZoneInfo("UTC")
    first = datetime.combine(day, wall, tzinfo=zone)  # fold=0: the first of a repeated time
    back = first.astimezone(utc).astimezone(zone)
    if back.replace(tzinfo=None) == first.replace(tzinfo=None):
        return first.astimezone(utc)
    # A skipped wall time: find the jump between the two readings of it.
    lo = datetime.combine(day, wall, tzinfo=zone).replace(fold=1).astimezone(utc)
    hi = first.astimezone(utc)
    lo, hi = min(lo, hi), max(lo, hi)
    offset = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)
