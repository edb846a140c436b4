"""What the services need from placement, whichever does it (Nomad, or this machine)."""

from __future__ import annotations

from typing import Protocol

from bridge.domain.models import Task, TaskGroup
from bridge.domain.specs import TaskGroupSpec


class PlacementPort(Protocol):
    def validate(self, spec: TaskGroupSpec) -> None:
        """Refuse (ValidationFailed) what this placement can never run, before any write."""

    def submit(self, group_id: str) -> None:
        """A group was committed: place it soon. Never raises; failures become reasons."""

    async def withdraw(self, group: TaskGroup) -> None:
        """Stop and remove everything placed for the group; raise if that is not possible
        now (the caller then keeps the group's rows, so nothing is orphaned)."""

    async def stop_task(self, group: TaskGroup, task: Task) -> None:
        """End one task's engine; raise (InvalidState) when this placement cannot."""

    async def retry_task(self, group: TaskGroup, task: Task) -> None:
        """Place a failed task again (its row is already back to pending)."""

    async def scale(self, group: TaskGroup, replicas: int) -> None:
        """Run ``replicas`` tasks (rows of new ranks exist already; removed ones are gone)."""
