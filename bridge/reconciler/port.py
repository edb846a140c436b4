"""Placement on Nomad as the services see it: validate, submit, withdraw."""

from __future__ import annotations

from bridge.domain.models import TaskGroup
from bridge.domain.specs import TaskGroupSpec
from bridge.reconciler.loop import Reconciler
from bridge.services.model_paths import check_model_path
from bridge.services.placement import Placer


class NomadPlacement:
    def __init__(self, placer: Placer, reconciler: Reconciler) -> None:
        self.placer = placer
        self.reconciler = reconciler

    def validate(self, spec: TaskGroupSpec) -> None:
        check_model_path(spec.model_path, self.placer.settings.model_roots)

    def submit(self, group_id: str) -> None:
        self.reconciler.request_registration(group_id)

    async def withdraw(self, group: TaskGroup) -> None:
        if group.nomad_job_id:
            await self.placer.purge(group.nomad_job_id)
