"""Following a rollout on Nomad: the job's deployments -> rolling_update_state (issue 11).

Nomad does the rolling itself (the job's ``update`` block: max_parallel, health_check =
"checks", healthy and progress deadlines, auto_revert; docs/nomad-consul.md 2.3); the bridge
re-registers the job with the new version and reads back, every few seconds:

    load (groups with a rollout on Nomad, each job's deployments)
    -> follow() (pure): which deployment is this version's, and what it says
    -> apply (rolling_update_state, rollout progress and reason; on auto-revert the group's
       fields go back to the version it came from)
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from bridge.background import cancel_all
from bridge.domain.status import RollingUpdateState
from bridge.domain.versions import Rollout
from bridge.errors import BridgeError
from bridge.nomad.client import NomadClient
from bridge.storage import audit
from bridge.storage import task_groups as group_rows
from bridge.storage import versions as version_rows
from bridge.storage.db import Database

log = logging.getLogger(__name__)
R = RollingUpdateState
Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Followed:
    state: RollingUpdateState
    reason: str
    progress: str | None = None
    done: bool = False
    reverted: bool = False  # Nomad went back to the last stable job (auto_revert)


def follow(rollout: Json, job_modify_index: int | None, deployments: list[Json],
           state: RollingUpdateState) -> Followed | None:
    """What the deployments (newest first) say about this rollout; None: nothing new yet."""
    if job_modify_index is None or job_modify_index == rollout.get("registered_after"):
        return None  # the new version is not registered yet
    ours = next((d for d in deployments
                 if d.get("JobSpecModifyIndex") == job_modify_index), None)
    version = rollout["to_version"]
    if ours is None:
        return Followed(state, f"version {version} registered; waiting for Nomad's deployment")
    status, why = ours["Status"], ours.get("StatusDescription") or ""
    groups = list((ours.get("TaskGroups") or {}).values())
    healthy = sum(int(g.get("HealthyAllocs") or 0) for g in groups)
    desired = sum(int(g.get("DesiredTotal") or 0) for g in groups)
    progress = f"{healthy} of {desired} replicas on version {version}"
    if status == "successful":
        return Followed(R.COMPLETED, f"version {version} on all {desired} replicas "
                                     "(Nomad: deployment successful)", progress, done=True)
    if status == "failed" and "rolling back" in why:
        later = [d for d in deployments if d.get("JobVersion", 0) > ours.get("JobVersion", 0)]
        back = f"version {version} failed on Nomad ({why})"
        if later and later[0]["Status"] == "successful":
            return Followed(R.ROLLBACK, f"{back}; back on version {rollout['from_version']}",
                            progress, done=True, reverted=True)
        return Followed(R.ROLLBACK, back, progress, reverted=True)
    if status in ("failed", "cancelled"):
        return Followed(R.FAILED, f"version {version} {status} on Nomad: {why}", progress,
                        done=True)
    placed = sum(int(g.get("PlacedAllocs") or 0) for g in groups)
    stuck = (f"; {desired - placed} new replica(s) not placed yet, Nomad fails the "
             f"deployment at its progress deadline ({_deadline(groups)})"
             if placed < desired else "")
    return Followed(R.ROLLING, f"Nomad is rolling out version {version}: {progress}{stuck}",
                    progress)


def _deadline(groups: list[Json]) -> str:
    return str(next((g.get("RequireProgressBy") for g in groups if g.get("RequireProgressBy")),
                    "its progress deadline"))


class DeploymentFollower:
    def __init__(self, db: Database, nomad: NomadClient, every_seconds: float = 2.0) -> None:
        self.db, self.nomad, self.every_seconds = db, nomad, every_seconds
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="nomad-deployments")]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_seconds)
            try:
                await self.tick()
            except BridgeError as exc:
                log.warning("following deployments failed", extra={"error": str(exc)})
            except Exception as exc:  # an odd answer must not end the loop for good
                log.warning("following deployments failed", extra={"error": repr(exc)})

    async def tick(self) -> None:
        async with self.db.transaction() as conn:
            ids = await version_rows.rolling_groups(conn, on_nomad=True)
        for group_id in ids:
            async with self.db.transaction() as conn:
                group = await group_rows.get_task_group(conn, group_id)
            if group is None or group.rollout is None or group.nomad_job_id is None:
                continue
            deployments = await self.nomad.job_deployments(group.nomad_job_id)
            step = follow(group.rollout, group.job_modify_index, deployments,
                          group.rolling_update_state)
            if step is None:
                continue
            await self._apply(group_id, group.rollout, step)

    async def _apply(self, group_id: str, data: Json, step: Followed) -> None:
        rollout = Rollout.from_json(data)
        async with self.db.transaction() as conn:
            if step.reverted and not data.get("reverted"):
                # Nomad registered the last stable job again; the group's fields follow.
                stable = await version_rows.get_version(conn, group_id, rollout.from_version)
                if stable is not None:
                    await version_rows.set_group_spec(conn, group_id, stable.version,
                                                      stable.spec)
                await audit.append(conn, actor=None, action="task_group.update.failed",
                                   object_type="task_group", object_id=group_id,
                                   details={"version": rollout.to_version,
                                            "reason": step.reason,
                                            "rollback_to": rollout.from_version})
            saved = {**data, **replace(rollout, reason=step.reason).as_json(),
                     "done": step.done, "progress": step.progress,
                     "reverted": step.reverted or bool(data.get("reverted"))}
            if saved == data and step.state.value == data.get("state"):
                return
            saved["state"] = step.state.value
            await version_rows.set_rollout(conn, group_id, step.state, saved, step.reason)
            if step.done:
                await audit.append(conn, actor=None, action="task_group.update.done",
                                   object_type="task_group", object_id=group_id,
                                   details={"state": step.state.value, "reason": step.reason})
