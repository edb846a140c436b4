"""Changing a running service: a new version (PUT .../update), the versions kept, revert.

Each update stores a new version (never rewriting an old one), points the group at it and
starts a rollout that placement carries out (locally: placement/local/rollout.py); its
progress is the group's rolling_update_state and rollout.
"""

from __future__ import annotations

from typing import Any

from bridge.domain.models import TaskGroup
from bridge.domain.status import RollingUpdateState, TaskStatus
from bridge.domain.versions import (
    Rollout,
    ServiceVersion,
    Strategy,
    UpdateRequest,
    VersionSpec,
    diff,
    spec_of,
)
from bridge.errors import InvalidState, NotFound, ValidationFailed
from bridge.placement.port import PlacementPort
from bridge.services.context import Actor
from bridge.storage import audit
from bridge.storage import task_groups as group_rows
from bridge.storage import versions as version_rows
from bridge.storage.db import Conn, Database

R = RollingUpdateState
IN_PROGRESS = frozenset({R.ROLLING, R.FAILED, R.ROLLBACK})
_LIVE = frozenset({TaskStatus.SCHEDULED, TaskStatus.STARTING, TaskStatus.RUNNING,
                   TaskStatus.SLEEPING, TaskStatus.WAKING, TaskStatus.STOPPING})


async def update_group(db: Database, placement: PlacementPort | None, group_id: str,
                       req: UpdateRequest, actor: Actor) -> TaskGroup:
    group = await get_group(db, group_id)
    current = spec_of(group)
    new = req.applied_to(current)
    changes = diff(current, new)
    if not changes:
        raise ValidationFailed("nothing changes: the update names what version "
                               f"{group.version} already runs", details={"fields": []})
    return await _roll_to(db, placement, group, new, changes, req, req.strategy.value, "",
                          actor)


async def revert(db: Database, placement: PlacementPort | None, group_id: str, version: int,
                 actor: Actor) -> TaskGroup:
    """Go back to ``version``'s spec, as a new version (the list keeps every step)."""
    group = await get_group(db, group_id)
    async with db.transaction() as conn:
        old = await version_rows.get_version(conn, group_id, version)
    if old is None:
        raise NotFound(f"task group {group.name} has no version {version}",
                       details={"version": version})
    changes = diff(spec_of(group), old.spec)
    if not changes:
        raise ValidationFailed(f"version {group.version} already runs what version {version}"
                               " ran; nothing to revert", details={"version": version})
    return await _roll_to(db, placement, group, old.spec, changes, UpdateRequest(),
                          "revert", f"revert to version {version}", actor)


async def abandon(db: Database, placement: PlacementPort | None, group_id: str,
                  actor: Actor) -> TaskGroup:
    """Give up on the rollout in progress: back to the version it came from."""
    async with db.transaction() as conn:
        group = await group_rows.get_task_group(conn, group_id, for_update=True)
        if group is None:
            raise NotFound(f"no task group {group_id}", details={"id": group_id})
        if group.rolling_update_state is not R.ROLLING or group.rollout is None \
                or group.rollout.get("done", True):
            raise InvalidState(f"task group {group.name} has no rollout in progress to fail "
                               f"({group.rolling_update_state.value})",
                               details={"rolling_update_state":
                                        group.rolling_update_state.value})
        await version_rows.set_rollout(conn, group.id, R.ROLLING,
                                       {**group.rollout, "abandoned": True})
        await audit.append(conn, actor=actor.principal, action="task_group.update.abandon",
                           object_type="task_group", object_id=group.id,
                           request_id=actor.request_id, details={"version": group.version})
    if placement is not None:
        await placement.abandon(group)
    return await get_group(db, group_id)


async def promote(db: Database, group_id: str, actor: Actor) -> TaskGroup:
    """The canaries held: replace the remaining replicas."""
    async with db.transaction() as conn:
        group = await group_rows.get_task_group(conn, group_id, for_update=True)
        if group is None:
            raise NotFound(f"no task group {group_id}", details={"id": group_id})
        rollout = group.rollout or {}
        if group.rolling_update_state is not R.ROLLING or rollout.get("done", True) \
                or not rollout.get("canary") or rollout.get("promoted"):
            raise InvalidState(f"task group {group.name} has no canary waiting for promotion",
                               details={"rolling_update_state":
                                        group.rolling_update_state.value})
        await version_rows.set_rollout(conn, group.id, R.ROLLING, {**rollout, "promoted": True},
                                       f"canaries of version {group.version} promoted; "
                                       "replacing the other replicas")
        await audit.append(conn, actor=actor.principal, action="task_group.update.promote",
                           object_type="task_group", object_id=group.id,
                           request_id=actor.request_id, details={"version": group.version})
    return await get_group(db, group_id)


async def list_versions(db: Database, group_id: str) -> list[ServiceVersion]:
    await get_group(db, group_id)
    async with db.transaction() as conn:
        return await version_rows.list_versions(conn, group_id)


async def record_first_version(conn: Conn, group: TaskGroup) -> None:
    """Version 1, written with the group (inside its creation's transaction)."""
    await version_rows.insert_version(conn, ServiceVersion(
        group_id=group.id, version=1, spec=spec_of(group), changes={}, strategy="initial",
        note="", created_by=group.created_by))


async def _roll_to(db: Database, placement: PlacementPort | None, group: TaskGroup,
                   spec: VersionSpec, changes: dict[str, Any], req: UpdateRequest,
                   strategy: str, note: str, actor: Actor) -> TaskGroup:
    if placement is not None:
        placement.check_update(group, spec)
        placement.check_canary(req.canary)
    async with db.transaction() as conn:
        locked = await group_rows.get_task_group(conn, group.id, for_update=True)
        if locked is None:
            raise NotFound(f"no task group {group.id}", details={"id": group.id})
        _refuse_in_progress(locked)
        number = await version_rows.latest_version(conn, group.id) + 1
        await version_rows.insert_version(conn, ServiceVersion(
            group_id=group.id, version=number, spec=spec, changes=changes, strategy=strategy,
            note=note, created_by=actor.principal.user_id if actor.principal else None))
        await version_rows.set_group_spec(conn, group.id, number, spec)
        live = sum(1 for t in locked.tasks if t.status in _LIVE)
        rollout = Rollout(strategy=req.strategy, max_parallel=req.max_parallel,
                          replicas=len(locked.tasks), from_version=locked.version,
                          to_version=number, healthy_deadline_s=req.healthy_deadline_s,
                          canary=req.canary, canary_percent=req.canary_percent)
        # Nomad's deployment for this version is the one of the next registration.
        followed = {**rollout.as_json(), "registered_after": locked.job_modify_index}
        if live:
            how = ("every replica stopped, then started" if req.strategy is Strategy.RECREATE
                   else f"{req.max_parallel} replica(s) at a time")
            await version_rows.set_rollout(conn, group.id, R.ROLLING,
                                           {**followed, "done": False},
                                           f"rolling to version {number}: {how}")
        else:
            # Nothing runs: the next start (or pending placement) uses the new version.
            await version_rows.set_rollout(
                conn, group.id, R.COMPLETED,
                {**followed, "done": True,
                 "reason": f"nothing ran; version {number} is used when it starts"})
        await audit.append(conn, actor=actor.principal, action="task_group.update",
                           object_type="task_group", object_id=group.id,
                           request_id=actor.request_id,
                           details={"version": number, "from": locked.version,
                                    "strategy": strategy, "changes": changes, "note": note})
    if placement is not None and live:
        placement.update(group.id)
    return await get_group(db, group.id)


def _refuse_in_progress(group: TaskGroup) -> None:
    done = bool((group.rollout or {}).get("done", True))
    if group.rolling_update_state in IN_PROGRESS and not done:
        raise InvalidState(
            f"task group {group.name} is rolling out version {group.version} "
            f"({group.update_progress}); wait until it completes or rolls back",
            details={"rolling_update_state": group.rolling_update_state.value})


async def get_group(db: Database, group_id: str) -> TaskGroup:
    async with db.transaction() as conn:
        group = await group_rows.get_task_group(conn, group_id)
    if group is None:
        raise NotFound(f"no task group {group_id}", details={"id": group_id})
    return group
