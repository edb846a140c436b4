"""Status machines of TaskGroup and Task as explicit transition tables.

TaskGroup (the seed's machine, docs/product.md "Entities")::

    pending -> scheduling -> running <-> sleeping
                   |            |
                   v            v
                 failed     completed

plus the moves an operator needs around it: a failed or completed group may be placed again
(retry), a sleeping group may fail or be stopped, and pending may fail (nothing placeable).

Task (one container)::

    pending -> scheduled -> starting -> running <-> sleeping
                                          |  ^        |
                                          |  +-waking-+
                                          v
                                      stopping -> completed
    any live state -> failed;  failed -> pending (retry) or a replacement allocation

An illegal move raises :class:`IllegalTransition` carrying the reason and the moves that
*are* allowed, so callers can answer 409 with something a person can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol


class TaskGroupStatus(StrEnum):
    PENDING = "pending"
    SCHEDULING = "scheduling"
    RUNNING = "running"
    SLEEPING = "sleeping"
    COMPLETED = "completed"
    FAILED = "failed"


class TaskStatus(StrEnum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    STARTING = "starting"
    RUNNING = "running"
    SLEEPING = "sleeping"
    WAKING = "waking"
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"


class RollingUpdateState(StrEnum):
    IDLE = "idle"
    ROLLING = "rolling"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLBACK = "rollback"


_G = TaskGroupStatus
# As for tasks, the group's status is derived from what placement observes, so the table
# admits a fast start (pending -> running), replicas lost (running -> scheduling) and Nomad
# rescheduling a failed group (failed -> scheduling/running).
TASK_GROUP_TRANSITIONS: dict[TaskGroupStatus, frozenset[TaskGroupStatus]] = {
    _G.PENDING: frozenset({_G.SCHEDULING, _G.RUNNING, _G.FAILED, _G.COMPLETED}),
    _G.SCHEDULING: frozenset({_G.RUNNING, _G.FAILED, _G.PENDING, _G.COMPLETED}),
    _G.RUNNING: frozenset({_G.SLEEPING, _G.FAILED, _G.COMPLETED, _G.SCHEDULING}),
    _G.SLEEPING: frozenset({_G.RUNNING, _G.FAILED, _G.COMPLETED, _G.SCHEDULING}),
    _G.COMPLETED: frozenset({_G.PENDING}),
    _G.FAILED: frozenset({_G.PENDING, _G.SCHEDULING, _G.RUNNING}),
}

# Placement is observed, not commanded, so the table also holds the moves reality makes
# between two observations: a fast start (pending -> running), a restart in place
# (running -> starting), a lost node (running -> pending), Nomad rescheduling a failed
# allocation (failed -> scheduled/starting/running).
_T = TaskStatus
TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    _T.PENDING: frozenset({_T.SCHEDULED, _T.STARTING, _T.RUNNING, _T.FAILED, _T.COMPLETED}),
    _T.SCHEDULED: frozenset({_T.STARTING, _T.RUNNING, _T.PENDING, _T.STOPPING, _T.FAILED,
                             _T.COMPLETED}),
    _T.STARTING: frozenset({_T.RUNNING, _T.PENDING, _T.STOPPING, _T.FAILED, _T.COMPLETED}),
    _T.RUNNING: frozenset({_T.SLEEPING, _T.STARTING, _T.PENDING, _T.STOPPING, _T.FAILED,
                           _T.COMPLETED}),
    _T.SLEEPING: frozenset({_T.WAKING, _T.STOPPING, _T.FAILED, _T.COMPLETED, _T.PENDING}),
    _T.WAKING: frozenset({_T.RUNNING, _T.SLEEPING, _T.FAILED, _T.STOPPING}),
    _T.STOPPING: frozenset({_T.COMPLETED, _T.FAILED}),
    _T.COMPLETED: frozenset(),
    _T.FAILED: frozenset({_T.PENDING, _T.SCHEDULED, _T.STARTING, _T.RUNNING}),
}

# States in which a task group and everything it owns may be deleted. The seed allows
# completed/failed; pending and scheduling are added because nothing of such a group serves
# yet (a service Nomad cannot place must be deletable), and deleting withdraws whatever
# placement holds for it first, so nothing is left behind.
DELETABLE_GROUP_STATES = frozenset({_G.PENDING, _G.SCHEDULING, _G.COMPLETED, _G.FAILED})


class IllegalTransition(ValueError):
    """A status move that the machine does not allow."""

    def __init__(self, kind: str, current: str, target: str, allowed: frozenset[str]) -> None:
        self.kind = kind
        self.current = current
        self.target = target
        self.allowed = sorted(allowed)
        hint = f"allowed from here: {', '.join(self.allowed)}" if allowed else f"{current} is final"
        super().__init__(f"a {kind} cannot go from {current} to {target} ({hint})")


def transition_task_group(current: TaskGroupStatus, target: TaskGroupStatus) -> TaskGroupStatus:
    allowed = TASK_GROUP_TRANSITIONS[current]
    if target not in allowed:
        raise IllegalTransition("task group", current, target, frozenset(allowed))
    return target


def transition_task(current: TaskStatus, target: TaskStatus) -> TaskStatus:
    allowed = TASK_TRANSITIONS[current]
    if target not in allowed:
        raise IllegalTransition("task", current, target, frozenset(allowed))
    return target


class HasStatus(Protocol):
    """A task as stored, or as the reconciler plans it."""

    @property
    def status(self) -> TaskStatus: ...
    @property
    def status_reason(self) -> str: ...


def derive_group(
    tasks: Sequence[HasStatus], *, stopped: bool, why_pending: str | None
) -> tuple[TaskGroupStatus, str, int]:
    """A group's status, reason and running replica count, from its tasks."""
    G, T = TaskGroupStatus, TaskStatus
    n = len(tasks)
    count = {s: sum(1 for t in tasks if t.status is s) for s in T}
    running = count[T.RUNNING]
    asleep = count[T.SLEEPING] + count[T.WAKING]
    if n == 0:
        return G.PENDING, "the group has no tasks", 0
    if count[T.COMPLETED] == n or (stopped and running == 0):
        return G.COMPLETED, "stopped", 0
    if running == n:
        return G.RUNNING, "", running
    if asleep and running + asleep == n:
        if running:
            return G.RUNNING, f"{asleep} of {n} replicas asleep", running
        return G.SLEEPING, "asleep; a request or `wake` brings it back", 0
    if running:
        return G.RUNNING, f"{running} of {n} replicas running", running
    unsettled = n - count[T.FAILED] - count[T.COMPLETED]
    if count[T.FAILED] and unsettled == 0:
        first = next(t for t in tasks if t.status is T.FAILED)
        return G.FAILED, first.status_reason or "its tasks failed", 0
    if count[T.PENDING] == n and why_pending:
        return G.SCHEDULING, why_pending, 0
    starting = count[T.SCHEDULED] + count[T.STARTING]
    if starting:
        return G.SCHEDULING, f"{starting} of {n} replicas placed and starting", 0
    return G.SCHEDULING, why_pending or "waiting for Nomad to place it", 0
