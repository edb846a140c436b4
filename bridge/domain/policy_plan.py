"""What the policy loop does for one service this round: pure, from what it loaded.

Order, and who wins (docs/policies.md): the schedule window sets the bounds (inside: the
service's min/max; outside: ``outside_replicas`` each way, or sleep); the autoscaler moves
the count inside them; idle sleep acts only inside a window (outside, the window already
decided). A window acts on its transitions only, so a service a request woke outside its
window stays awake until idle sleep (or the next transition) puts it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bridge.domain.autoscale import DEFAULT_DOWN_DELAY_S, Decision, Inputs, decide
from bridge.domain.models import TaskGroup
from bridge.domain.status import RollingUpdateState, TaskStatus
from bridge.domain.windows import Phase, Schedule

PENDING = frozenset({TaskStatus.PENDING, TaskStatus.SCHEDULED, TaskStatus.STARTING})


@dataclass(slots=True)
class Memory:
    """What the loop remembers of a service between rounds (leader's memory only)."""

    samples: list[tuple[float, float]] = field(default_factory=list)  # (time, per replica)
    high_since: float | None = None
    low_since: float | None = None
    idle_since: float | None = None
    phase: Phase | None = None
    schedule_key: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    scale_to: int | None = None
    sleep: tuple[str, ...] = ()
    wake: tuple[str, ...] = ()
    decision: str = ""  # "" : nothing to say (no autoscaling, within bounds)
    idle_note: str = ""


def bounds(group: TaskGroup, schedule: Schedule | None,
           phase: Phase | None) -> tuple[int, int, str]:
    """(min, max, where they come from); max 0 is no limit."""
    if schedule is None or phase is None or phase.inside:
        return group.min_replicas, group.max_replicas, "the policy"
    if schedule.outside == "replicas":
        k = schedule.outside_replicas
        return k, k, f"outside its windows the service runs {k}"
    return group.min_replicas, group.max_replicas, "the policy (asleep outside its windows)"


def average(mem: Memory, now: float, window_s: float, value: float | None) -> float | None:
    """Add this round's sample and average the window (None: the metric is missing now)."""
    if value is None:
        mem.samples.clear()  # a gap ends the average: never mixed across missing values
        return None
    mem.samples.append((now, value))
    mem.samples[:] = [(t, v) for t, v in mem.samples if now - t <= window_s]
    return round(sum(v for _, v in mem.samples) / len(mem.samples), 3)


def scale_decision(group: TaskGroup, value: float | None, missing: str, lo: int, hi: int,
                   mem: Memory, now: float, last_scaled: float | None,
                   rollout: str = "") -> Decision:
    policy = group.scale_policy or {}
    cooldown = float(policy.get("cooldown_seconds", 60))
    tasks = group.tasks
    if not rollout and group.rolling_update_state is RollingUpdateState.ROLLING:
        rollout = "a rolling update is in progress"
    return decide(Inputs(
        metric=str(policy.get("metric", "")), target=float(policy.get("target_value", 0)),
        value=value, missing=missing, replicas=len(tasks),
        pending=sum(1 for t in tasks if t.status in PENDING), min_replicas=lo,
        max_replicas=hi, cooldown_s=cooldown,
        up_delay_s=float(policy.get("up_delay_seconds", cooldown)),
        down_delay_s=float(policy.get("down_delay_seconds", DEFAULT_DOWN_DELAY_S)),
        now=now, high_since=mem.high_since, low_since=mem.low_since,
        last_scaled_at=last_scaled, rollout=rollout))


def window_actions(group: TaskGroup, schedule: Schedule | None, before: bool | None,
                   phase: Phase | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tasks to sleep, tasks to wake) on a window transition; nothing between them."""
    if schedule is None or phase is None or schedule.outside != "sleep":
        return (), ()
    if before is None or before == phase.inside:
        if before is None and not phase.inside:  # first look, already outside: sleep now
            return tuple(t.id for t in group.tasks if t.status is TaskStatus.RUNNING), ()
        return (), ()
    if phase.inside:
        return (), tuple(t.id for t in group.tasks if t.status is TaskStatus.SLEEPING)
    return tuple(t.id for t in group.tasks if t.status is TaskStatus.RUNNING), ()


def idle_check(group: TaskGroup, mem: Memory, now: float, *, gateways: int, busy: bool,
               last_request: float | None) -> tuple[tuple[str, ...], str]:
    """Idle sleep judged from the gateways' traffic: (tasks to sleep, why)."""
    minutes = group.idle_timeout_minutes
    running = tuple(t.id for t in group.tasks if t.status is TaskStatus.RUNNING)
    if minutes <= 0 or not running:
        mem.idle_since = None
        return (), ""
    if gateways == 0:
        mem.idle_since = None
        return (), "idleness unknown: no gateway has published its counters recently"
    if busy:
        mem.idle_since = None
        return (), "busy: requests in flight or waiting at the gateways"
    if mem.idle_since is None:
        mem.idle_since = now
    since = max(mem.idle_since, last_request or mem.idle_since)
    idle_s = now - since
    if idle_s < minutes * 60:
        return (), f"idle for {idle_s / 60:.1f} of {minutes} min (no request at any gateway)"
    mem.idle_since = None
    return running, f"put to sleep: no request at any gateway for {minutes} min"


def at(ts: datetime) -> float:
    return ts.timestamp()
