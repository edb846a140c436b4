"""decide(): the pure heart of the reconciler."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.domain.status import (
    TASK_GROUP_TRANSITIONS,
    TASK_TRANSITIONS,
    TaskGroupStatus,
    TaskStatus,
    derive_group,
)
from bridge.nomad.allocations import ObservedAlloc, pick_current, task_status_for

G = TaskGroupStatus
T = TaskStatus
# Sleep and wake are commanded by the agent while the allocation keeps running: placement
# must not overwrite them with "running".
_HELD_WHILE_ALLOC_RUNS = frozenset({T.SLEEPING, T.WAKING})


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: str
    rank: int
    status: TaskStatus
    status_reason: str = ""
    node_id: str | None = None
    node_name: str | None = None
    alloc_id: str | None = None
    address: str | None = None
    gpu_id: str | None = None


@dataclass(frozen=True, slots=True)
class GroupRow:
    id: str
    name: str
    status: TaskGroupStatus
    status_reason: str
    job_id: str | None
    current_replicas: int
    tasks: tuple[TaskRow, ...]


@dataclass(frozen=True, slots=True)
class JobView:
    job_id: str
    group_id: str | None  # meta hf_task_group_id; None = not ours
    stopped: bool = False
    allocs: tuple[ObservedAlloc, ...] = ()
    why_pending: str | None = None


@dataclass(frozen=True, slots=True)
class TaskChange:
    task_id: str
    expected: TaskStatus
    status: TaskStatus
    reason: str
    node_id: str | None
    node_name: str | None
    alloc_id: str | None
    address: str | None
    gpu_id: str | None


@dataclass(frozen=True, slots=True)
class GroupChange:
    group_id: str
    expected: TaskGroupStatus
    status: TaskGroupStatus
    reason: str
    current_replicas: int


@dataclass(frozen=True, slots=True)
class Plan:
    tasks: tuple[TaskChange, ...] = ()
    groups: tuple[GroupChange, ...] = ()
    register: tuple[str, ...] = ()  # group ids whose job must be (re)registered
    # (Nomad job id, the group id in its meta): jobs whose group no longer exists
    purge: tuple[tuple[str, str | None], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)  # moves refused, for the log

    @property
    def empty(self) -> bool:
        return not (self.tasks or self.groups or self.register or self.purge)


def decide(groups: list[GroupRow], jobs: dict[str, JobView], *, full: bool) -> Plan:
    """Compare stored groups with Nomad's view. ``full``: ``jobs`` is every job we manage,
    so a job no group owns is an orphan to purge."""
    tasks: list[TaskChange] = []
    changes: list[GroupChange] = []
    register: list[str] = []
    notes: list[str] = []
    for group in groups:
        if group.job_id is None:
            if group.status is G.PENDING:
                register.append(group.id)
            continue
        job = jobs.get(group.job_id)
        if job is None:
            if group.status not in (G.COMPLETED, G.FAILED):
                register.append(group.id)  # the job vanished from Nomad: heal it
            continue
        new_tasks = [_task_target(t, job) for t in group.tasks]
        for before, after in zip(group.tasks, new_tasks, strict=True):
            if after != before:
                if after.status != before.status and after.status not in TASK_TRANSITIONS[
                        before.status]:
                    notes.append(f"task {before.id}: {before.status} -> {after.status} refused")
                    continue
                tasks.append(_task_change(before, after))
        status, reason, running = derive_group(new_tasks, stopped=job.stopped,
                                               why_pending=job.why_pending)
        if (status, reason, running) != (group.status, group.status_reason,
                                         group.current_replicas):
            if status != group.status and status not in TASK_GROUP_TRANSITIONS[group.status]:
                notes.append(f"group {group.id}: {group.status} -> {status} refused")
            else:
                changes.append(GroupChange(group.id, group.status, status, reason, running))
    purge: list[tuple[str, str | None]] = []
    if full:
        # Ownership is the group id in the job's meta, not the job id the row recorded: a
        # job registered a moment ago may not be recorded yet, and must not be purged.
        known = {g.id for g in groups}
        purge = sorted((j.job_id, j.group_id) for j in jobs.values()
                       if j.group_id not in known and not j.stopped)
    return Plan(tuple(tasks), tuple(changes), tuple(register), tuple(purge), tuple(notes))


def _task_target(row: TaskRow, job: JobView) -> TaskRow:
    mine = [a for a in job.allocs if a.index == row.rank]
    alloc: ObservedAlloc | None = pick_current(mine)
    if alloc is None:
        if job.stopped:
            return _with(row, T.COMPLETED, "the Nomad job is stopped", None)
        reason = job.why_pending or "waiting for Nomad to place it"
        return _with(row, T.PENDING, reason, None)
    status, reason = task_status_for(alloc)
    if status is T.RUNNING and row.status in _HELD_WHILE_ALLOC_RUNS:
        status, reason = row.status, row.status_reason
    return _with(row, status, reason, alloc)


def _with(row: TaskRow, status: TaskStatus, reason: str, alloc: ObservedAlloc | None) -> TaskRow:
    if alloc is None:
        return TaskRow(row.id, row.rank, status, reason)
    return TaskRow(
        row.id, row.rank, status, reason, node_id=alloc.node_id, node_name=alloc.node_name,
        alloc_id=alloc.alloc_id, address=alloc.address if alloc.live else None,
        gpu_id=",".join(alloc.device_ids) or None,
    )


def _task_change(before: TaskRow, after: TaskRow) -> TaskChange:
    return TaskChange(before.id, before.status, after.status, after.status_reason,
                      after.node_id, after.node_name, after.alloc_id, after.address,
                      after.gpu_id)
