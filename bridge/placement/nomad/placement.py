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

    def check_stop(self, group: TaskGroup, task: Task) -> None:
        if len(group.tasks) > 1:
            raise InvalidState(
                "on Nomad one replica of several cannot be stopped alone (Nomad would replace "
                "it); scale the service down instead (PUT /api/v1/task-groups/{id}/scale)",
                details={"replicas": len(group.tasks)})

    async def stop_task(self, group: TaskGroup, task: Task) -> bool:
        self.check_stop(group, task)
        if group.nomad_job_id is None:
            return True  # no job yet, so nothing runs and nothing will report an end
        # Stop, not purge: the job stays, so retry can run it again.
        await self.placer.cluster.deregister(group.nomad_job_id, purge=False)
        return False  # the reconciler completes the task when the allocation stops

    async def retry_task(self, group: TaskGroup, task: Task) -> None:
        job = await self.placer.cluster.job(group.nomad_job_id) if group.nomad_job_id else None
        if job is None or job.get("Stop"):
            self.reconciler.request_registration(group.id)
        else:
            await self.placer.cluster.evaluate(group.nomad_job_id or "", force_reschedule=True)

    def ends_removed_ranks(self, group: TaskGroup) -> bool:
        return group.nomad_job_id is not None  # the job's new count stops the highest ranks

    async def scale(self, group: TaskGroup, replicas: int, reason: str | None = None) -> None:
        if group.nomad_job_id is None:
            return  # not registered yet: it registers with the new count
        # Nomad answers 409 while a deployment rolls out: the rows stay as they are. The
        # message is kept in the job's scaling events (`nomad job scaling-events`).
        await self.placer.cluster.scale(group.nomad_job_id, "engine", replicas,
                                        f"HeteroFlow: {reason}" if reason else
                                        f"HeteroFlow: scale {group.name} to {replicas}")

    async def rollout(self, group: TaskGroup) -> str:
        if group.nomad_job_id is None:
            return ""
        deployment = await self.placer.cluster.latest_deployment(group.nomad_job_id)
        if not deployment or deployment.get("Status") not in ("running", "pending",
                                                                "paused", "blocked"):
            return ""
        return (f"Nomad deployment {str(deployment.get('ID', ''))[:8]} of job version "
                f"{deployment.get('JobVersion')} is {deployment.get('Status')} "
                f"({deployment.get('StatusDescription', '')})")

    def scaled(self, group: TaskGroup, replicas: int) -> None:
        if group.nomad_job_id is None and replicas > len(group.tasks):
            self.submit(group.id)  # a registered job placed them through its count
