"""decide_rollout(): the next steps of a local rollout, pure (table tests give fixed times).

A rolling update here, one tick at a time (issue 11, item 3):

    start a replica of the new version beside the old ones (a surge, up to max_parallel)
    -> it runs, and has run long enough for the gateway to probe it into its pool (settle)
    -> one old replica leaves the pool (stopping: the gateway serves only running tasks)
       and keeps answering what it already has for ``drain`` seconds
    -> its engine stops and its row goes; repeat until every replica is on the new version.

With no room for an extra replica (``surge`` False: too few free GPUs) an old replica is
drained and stopped first, then its replacement started. Recreate is the same with every
replica at once. A new replica that fails, or is not running within the healthy deadline,
fails the rollout (the caller then rolls back to the version it came from).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bridge.domain.models import Task, TaskGroup
from bridge.domain.status import TaskStatus
from bridge.domain.versions import Rollout, Strategy

T = TaskStatus
_GONE = frozenset({T.COMPLETED, T.FAILED})


@dataclass(frozen=True, slots=True)
class Add:
    count: int  # new replicas of the group's version, pending


@dataclass(frozen=True, slots=True)
class Drain:
    task: Task
    reason: str


@dataclass(frozen=True, slots=True)
class Stop:
    task: Task  # end its engine and remove its row


@dataclass(frozen=True, slots=True)
class Fail:
    reason: str


@dataclass(frozen=True, slots=True)
class Complete:
    reason: str


Step = Add | Drain | Stop | Fail | Complete


@dataclass(frozen=True, slots=True)
class Timing:
    settle_s: float  # running this long before it counts as in the gateway's pool
    drain_s: float  # a replica out of the pool answers its requests in flight this long


def decide_rollout(group: TaskGroup, rollout: Rollout, now: datetime,
                   timing: Timing) -> list[Step]:
    target = group.version
    old = [t for t in group.tasks if t.version != target]
    new = [t for t in group.tasks if t.version == target]
    for t in new:
        if t.status is T.FAILED:
            return [Fail(f"replica {t.id} of version {target} failed: "
                         f"{t.status_reason or 'no reason given'}")]
        if t.status is not T.RUNNING and _created(t, now) > rollout.healthy_deadline_s:
            return [Fail(f"replica {t.id} of version {target} was not healthy within "
                         f"{rollout.healthy_deadline_s:g} s ({t.status.value}: "
                         f"{t.status_reason})")]
    n = rollout.replicas
    ready = [t for t in new if t.status is T.RUNNING and _age(t, now) >= timing.settle_s]
    starting = [t for t in new if t not in ready]
    if not old and len(ready) == n and len(new) == n:
        return [Complete(f"version {target} on all {n} replicas")]
    if rollout.in_canary and old:
        # Canaries beside every old replica; the rest waits for promotion (or rollback).
        want = min(rollout.canary, n) - len(new)
        return [Add(want)] if want > 0 else []
    steps: list[Step] = []
    draining = [t for t in old if t.status is T.STOPPING]
    live = [t for t in old if t.status is not T.STOPPING]
    # Old replicas that serve nothing (failed, pending, still starting) go at once.
    for t in live:
        if t.status is not T.RUNNING and t.status is not T.SLEEPING:
            steps.append(Stop(t))
    live = [t for t in live if t.status in (T.RUNNING, T.SLEEPING)]
    steps += [Stop(t) for t in draining if _age(t, now) >= timing.drain_s]
    parallel = n if rollout.strategy is Strategy.RECREATE else max(1, rollout.max_parallel)
    surge = rollout.surge and rollout.strategy is Strategy.ROLLING
    room = n + (parallel if surge else 0) - (len(live) + len(draining) + len(new))
    add = min(room, parallel - len(starting), n - len(new))
    if add > 0:
        steps.append(Add(add))
    excess = len(live) + len(ready) - n
    if excess > 0:
        steps += [Drain(t, f"draining: replaced by version {target}") for t in live[:excess]]
    elif not surge and not draining and not starting and len(new) < n and add <= 0:
        # No room beside them: stop then start, max_parallel (recreate: all) at a time.
        steps += [Drain(t, f"draining: making room for version {target}")
                  for t in live[:parallel]]
    return steps


def _created(task: Task, now: datetime) -> float:
    return (now - task.created_at).total_seconds() if task.created_at else 0.0


def _age(task: Task, now: datetime) -> float:
    """Seconds since its last status change."""
    at = task.updated_at or task.created_at
    return (now - at).total_seconds() if at else 0.0
