"""Placement on Nomad as the services see it: validate, submit, withdraw."""

from __future__ import annotations

from bridge.domain.models import Task, TaskGroup
from bridge.domain.specs import TaskGroupSpec
from bridge.errors import InvalidState
from bridge.placement.model_paths import check_model_path
from bridge.placement.nomad.loop import Reconciler
from bridge.placement.nomad.placer import Placer


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

    async def stop_task(self, group: TaskGroup, task: Task) -> None:
        if len(group.tasks) > 1:
            raise InvalidState(
                "on Nomad one replica of several cannot be stopped alone (Nomad would replace "
                "it); scale the service down instead (PUT /api/v1/task-groups/{id}/scale)",
                details={"replicas": len(group.tasks)})
        if group.nomad_job_id:
            # Stop, not purge: the job stays, so retry can run it again.
            await self.placer.cluster.deregister(group.nomad_job_id, purge=False)

    async def retry_task(self, group: TaskGroup, task: Task) -> None:
        job = await self.placer.cluster.job(group.nomad_job_id) if group.nomad_job_id else None
        if job is None or job.get("Stop"):
            self.reconciler.request_registration(group.id)
        else:
            await self.placer.cluster.evaluate(group.nomad_job_id or "", force_reschedule=True)

    async def scale(self, group: TaskGroup, replicas: int) -> None:
        if group.nomad_job_id is None:
            return  # not registered yet: it registers with the new count
        await self.placer.cluster.scale(group.nomad_job_id, "engine", replicas,
                                        f"HeteroFlow: scale {group.name} to {replicas}")
