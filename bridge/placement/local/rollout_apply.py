"""Local rollouts: load (group, rollout, room for a surge) -> decide_rollout -> apply (rows,
the agent's stop), one tick per group with a rollout in progress."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from bridge.domain import ids
from bridge.domain.models import Task, TaskGroup
from bridge.domain.status import RollingUpdateState, TaskStatus
from bridge.domain.versions import Rollout
from bridge.errors import AgentRefused, AgentUnavailable
from bridge.placement.local.apply import LocalApply
from bridge.placement.local.decide import Host, Wait, decide
from bridge.placement.local.rollout import (
    Add,
    Complete,
    Drain,
    Fail,
    Step,
    Stop,
    Timing,
    decide_rollout,
)
from bridge.storage import audit
from bridge.storage import placement as rows
from bridge.storage import task_groups as group_rows
from bridge.storage import versions as version_rows
from bridge.storage.db import Database

log = logging.getLogger(__name__)
T = TaskStatus
R = RollingUpdateState


class RolloutApply:
    def __init__(self, db: Database, apply: LocalApply, host: Host, timing: Timing,
                 submit: Callable[[str], None]) -> None:
        self.db, self.apply, self.host, self.timing, self.submit = (db, apply, host, timing,
                                                                     submit)

    async def groups(self) -> list[str]:
        async with self.db.transaction() as conn:
            return await version_rows.rolling_groups(conn)

    async def tick(self, group_id: str) -> None:
        loaded = await self.apply.load_group(group_id)
        group = loaded.group
        if group is None or group.rollout is None or group.nomad_job_id:
            return
        rollout = Rollout.from_json(group.rollout)
        if rollout.surge and not any(t.version == group.version for t in group.tasks):
            # Before the first new replica: is there room for one beside the old ones?
            probe = replace(group, tasks=[_new_task(group, 10_000)])
            outcome = decide(probe, loaded.nodes, loaded.busy, self.host)
            if outcome and isinstance(outcome[0], Wait):
                rollout = replace(rollout, surge=False, notes=[
                    *rollout.notes, "no room for an extra replica beside the old ones "
                    f"({outcome[0].reason}); replacing them stop then start"])
                await self._save(group, R(group.rolling_update_state), rollout,
                                 rollout.notes[-1])
        if rollout.abandoned:
            await self._fail(group, rollout, "abandoned on request")
            return
        steps = decide_rollout(group, rollout, datetime.now(UTC), self.timing)
        for step in steps:
            await self._apply(group, rollout, step)
        if not steps:
            await self._explain(group, rollout)

    async def _explain(self, group: TaskGroup, rollout: Rollout) -> None:
        """A rollout waiting on a replica that cannot be placed says why, in words."""
        waiting = [t for t in group.tasks if t.version == group.version
                   and t.status is T.PENDING and t.status_reason]
        if not waiting:
            return
        why = (f"rolling to version {group.version}: {group.update_progress}; a new replica "
               f"waits: {waiting[0].status_reason}")
        if why != rollout.reason:
            await self._save(group, R(group.rolling_update_state), replace(rollout, reason=why),
                             why)

    async def _apply(self, group: TaskGroup, rollout: Rollout, step: Step) -> None:
        if isinstance(step, Add):
            async with self.db.transaction() as conn:
                first = await version_rows.next_rank(conn, group.id)
                await group_rows.insert_tasks(
                    conn, [_new_task(group, first + i) for i in range(step.count)])
                await rows.follow_group(conn, group.id)
            self.submit(group.id)
        elif isinstance(step, Drain):
            async with self.db.transaction() as conn:
                await rows.update_task_if(conn, step.task.id, step.task.status.value,
                                          status=T.STOPPING.value, status_reason=step.reason)
                await rows.follow_group(conn, group.id)
        elif isinstance(step, Stop):
            if step.task.node_id:
                try:
                    await self.apply.stop_engine(step.task.node_id, step.task.id)
                except (AgentUnavailable, AgentRefused) as exc:
                    # The sweep stops engines no row holds once the agent answers again.
                    log.warning("stopping a replaced replica failed", extra={
                        "task_id": step.task.id, "error": exc.message})
            async with self.db.transaction() as conn:
                await version_rows.delete_task(conn, step.task.id)
                await rows.follow_group(conn, group.id)
        elif isinstance(step, Fail):
            await self._fail(group, rollout, step.reason)
        elif isinstance(step, Complete):
            await self._complete(group, rollout, step.reason)

    async def _fail(self, group: TaskGroup, rollout: Rollout, reason: str) -> None:
        if group.rolling_update_state is R.ROLLBACK:
            done = replace(rollout, reason=f"the rollback failed too: {reason}")
            await self._save(group, R.FAILED, done, done.reason, done=True)
            return
        async with self.db.transaction() as conn:
            stable = await version_rows.get_version(conn, group.id, rollout.from_version)
            # failed first, as the seed's machine says, then rollback at once
            await version_rows.set_rollout(conn, group.id, R.FAILED, rollout.as_json(), reason)
            if stable is None:
                return
            await version_rows.set_group_spec(conn, group.id, stable.version, stable.spec)
            back = replace(rollout, from_version=rollout.to_version,
                           to_version=stable.version, surge=True, abandoned=False,
                           reason=f"version {rollout.to_version} failed ({reason}); "
                                  f"rolling back to version {stable.version}")
            await version_rows.set_rollout(conn, group.id, R.ROLLBACK, back.as_json(),
                                           back.reason)
            await audit.append(conn, actor=None, action="task_group.update.failed",
                               object_type="task_group", object_id=group.id,
                               details={"version": rollout.to_version, "reason": reason,
                                        "rollback_to": stable.version})
        log.warning("rollout failed; rolling back", extra={
            "task_group_id": group.id, "version": rollout.to_version, "reason": reason})

    async def _complete(self, group: TaskGroup, rollout: Rollout, reason: str) -> None:
        rolled_back = group.rolling_update_state is R.ROLLBACK
        state = R.ROLLBACK if rolled_back else R.COMPLETED
        text = (f"{rollout.reason}; back on version {group.version} on all "
                f"{rollout.replicas} replicas") if rolled_back else reason
        await self._save(group, state, replace(rollout, reason=text), text, done=True)

    async def _save(self, group: TaskGroup, state: RollingUpdateState, rollout: Rollout,
                    reason: str, *, done: bool = False) -> None:
        data = {**rollout.as_json(), "done": done}
        async with self.db.transaction() as conn:
            await version_rows.set_rollout(conn, group.id, state, data, reason)
            if done:
                await version_rows.renumber_ranks(conn, group.id)
                await audit.append(conn, actor=None, action="task_group.update.done",
                                   object_type="task_group", object_id=group.id,
                                   details={"state": state.value, "version": group.version,
                                            "reason": reason})


def _new_task(group: TaskGroup, rank: int) -> Task:
    template = group.tasks[0] if group.tasks else None
    return Task(id=ids.new_task_id(group.id, rank), group_id=group.id, rank=rank,
                status=T.PENDING, status_reason=f"version {group.version}: waiting for "
                "placement", image=group.image, gpu_required=group.gpu_required,
                gpu_type=group.gpu_type.value if group.gpu_type else None, gpu_id=None,
                node_id=None, model_path=group.model_path,
                ports=template.ports if template else [p.as_json() for p in group.ports],
                volumes=[], estimated_gpu_memory_mb=group.estimated_gpu_memory_mb,
                version=group.version)
