"""What the services need from placement, whichever does it (Nomad, or this machine).

The services call these and nothing else of placement; what differs between the two
(a Nomad job that counts replicas itself, engines an agent ends at once) is answered
here, so callers never ask which placement they have.
"""

from __future__ import annotations

from typing import Protocol

from bridge.domain.models import Task, TaskGroup
from bridge.domain.specs import TaskGroupSpec
from bridge.domain.versions import VersionSpec


class PlacementPort(Protocol):
    def validate(self, spec: TaskGroupSpec) -> None:
        """Refuse (ValidationFailed) what this placement can never run, before any write."""

    def submit(self, group_id: str) -> None:
        """A group was committed: place it soon. Never raises; failures become reasons."""

    async def withdraw(self, group: TaskGroup) -> None:
        """Stop and remove everything placed for the group; raise if that is not possible
        now (the caller then keeps the group's rows, so nothing is orphaned)."""

    def check_stop(self, group: TaskGroup, task: Task) -> None:
        """Refuse (InvalidState) a stop of this one task that this placement cannot do,
        before the task is marked stopping."""

    async def stop_task(self, group: TaskGroup, task: Task) -> bool:
        """End one task's engine; raise (InvalidState) when this placement cannot. True:
        it has ended now (the caller completes the task); False: placement reports the
        end later."""

    async def retry_task(self, group: TaskGroup, task: Task) -> None:
        """Place a failed task again (its row is already back to pending)."""

    def ends_removed_ranks(self, group: TaskGroup) -> bool:
        """Whether scale() itself ends the engines of the ranks a scale down removes;
        otherwise the caller stops each of them (stop_task) before removing its row."""

    async def scale(self, group: TaskGroup, replicas: int, reason: str | None = None) -> None:
        """Run ``replicas`` tasks; called before any row changes, so a refusal leaves the
        rows as they were. ``reason``: why (the autoscaler's sentence), kept by placement
        where it keeps such things (Nomad's scaling events)."""

    async def rollout(self, group: TaskGroup) -> str:
        """A rollout in progress that a scale must wait out, in words ("" when none)."""

    def scaled(self, group: TaskGroup, replicas: int) -> None:
        """The rows of a scale are committed (``group`` as it was before): place new ranks
        that scale() did not already have placed."""

    def check_update(self, group: TaskGroup, spec: VersionSpec) -> None:
        """Refuse (ValidationFailed, InvalidState) a new version this placement cannot roll
        out, before it is stored."""

    def check_canary(self, canary: int) -> None:
        """Refuse (InvalidState) canaries where this placement cannot run them."""

    def update(self, group_id: str) -> None:
        """A new version (and its rollout) is committed: roll it out. Never raises; how it
        goes is written to the group's rolling_update_state and rollout."""

    async def abandon(self, group: TaskGroup) -> None:
        """The operator gives up on the rollout in progress (already marked abandoned in
        the group's rollout): go back to the version it came from."""
