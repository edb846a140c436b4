"""Setting a service's scale policy and schedule windows (PUT .../scale-policy and
.../schedule-window), and reading what the policy loop last decided for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.domain.models import TaskGroup
from bridge.errors import NotFound, ValidationFailed
from bridge.placement.port import PlacementPort
from bridge.services.context import Actor
from bridge.storage import audit
from bridge.storage import policies as rows
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Database
from bridge.storage.policies import PolicyState


@dataclass(frozen=True, slots=True)
class ScalePolicyChange:
    auto_scale: bool
    min_replicas: int
    max_replicas: int
    policy: dict[str, Any] | None  # metric, target_value, cooldown_seconds, delays


async def set_scale_policy(db: Database, group_id: str, change: ScalePolicyChange,
                           actor: Actor, placement: PlacementPort | None = None) -> TaskGroup:
    """Store and audit the policy; on Nomad the job is registered again (counts preserved)
    so its `scaling` block carries the new bounds."""
    async with db.transaction() as conn:
        group = await group_rows.get_task_group(conn, group_id, for_update=True)
        if group is None:
            raise NotFound(f"no task group {group_id}", details={"id": group_id})
        if change.auto_scale and group.node_count > 1:
            # A replica of a multi-node service is several tasks; the autoscaler counts tasks.
            raise ValidationFailed("autoscaling needs a single-node service (node_count 1)",
                                   details={"field": "auto_scale"})
        await rows.set_scale_policy(conn, group_id, auto_scale=change.auto_scale,
                                    min_replicas=change.min_replicas,
                                    max_replicas=change.max_replicas, policy=change.policy)
        await audit.append(conn, actor=actor.principal, action="task_group.scale_policy",
                           object_type="task_group", object_id=group_id,
                           request_id=actor.request_id,
                           details={"before": {"auto_scale": group.auto_scale,
                                               "min_replicas": group.min_replicas,
                                               "max_replicas": group.max_replicas,
                                               "scale_policy": group.scale_policy},
                                    "after": {"auto_scale": change.auto_scale,
                                              "min_replicas": change.min_replicas,
                                              "max_replicas": change.max_replicas,
                                              "scale_policy": change.policy}})
        updated = await group_rows.get_task_group(conn, group_id)
    assert updated is not None
    if placement is not None:
        placement.submit(group_id)
    return updated


async def set_schedule_window(db: Database, group_id: str, window: dict[str, Any] | None,
                              actor: Actor) -> TaskGroup:
    async with db.transaction() as conn:
        group = await group_rows.get_task_group(conn, group_id, for_update=True)
        if group is None:
            raise NotFound(f"no task group {group_id}", details={"id": group_id})
        await rows.set_schedule_window(conn, group_id, window)
        await audit.append(conn, actor=actor.principal, action="task_group.schedule_window",
                           object_type="task_group", object_id=group_id,
                           request_id=actor.request_id,
                           details={"before": group.schedule_window, "after": window})
        updated = await group_rows.get_task_group(conn, group_id)
    assert updated is not None
    return updated


async def policy_state(db: Database, group_id: str) -> PolicyState | None:
    async with db.transaction() as conn:
        return await rows.get_state(conn, group_id)
