"""What the services need from placement, whichever does it (Nomad, or this machine)."""

from __future__ import annotations

from typing import Protocol

from bridge.domain.models import TaskGroup
from bridge.domain.specs import TaskGroupSpec


class PlacementPort(Protocol):
    def validate(self, spec: TaskGroupSpec) -> None:
        """Refuse (ValidationFailed) what this placement can never run, before any write."""

    def submit(self, group_id: str) -> None:
        """A group was committed: place it soon. Never raises; failures become reasons."""

    async def withdraw(self, group: TaskGroup) -> None:
        """Stop and remove everything placed for the group; raise if that is not possible
        now (the caller then keeps the group's rows, so nothing is orphaned)."""
