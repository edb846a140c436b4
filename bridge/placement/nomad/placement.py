"""Placement on Nomad as the services see it: validate, submit, withdraw."""

from __future__ import annotations

import logging

from bridge.domain.models import Task, TaskGroup
from bridge.domain.specs import TaskGroupSpec
from bridge.domain.versions import VersionSpec
from bridge.errors import InvalidState, NomadConflict
from bridge.placement.model_paths import check_model_path
from bridge.placement.nomad.loop import Reconciler
from bridge.placement.nomad.placer import Placer

log = logging.getLogger(__name__)


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
        try:
            await self.placer.cluster.scale(group.nomad_job_id, "engine", replicas,
                                            f"HeteroFlow: {reason}" if reason else
                                            f"HeteroFlow: scale {group.name} to {replicas}")
        except NomadConflict:
            if replicas >= len(group.tasks) or not await self._stuck(group.nomad_job_id):
                raise
            # A scale-up beyond capacity would otherwise block every later scale until its
            # progress deadline; scaling down is how an operator gets out of it.
            log.info("scale down replaces a deployment that cannot progress",
                     extra={"task_group_id": group.id, "replicas": replicas})
            await self.placer.replace_count(group.id, replicas)

    async def abandon(self, group: TaskGroup) -> None:
        if group.nomad_job_id is None:
            return
        latest = next(iter(await self.placer.cluster.job_deployments(group.nomad_job_id)),
                      None)
        if latest is not None and latest["Status"] in ("running", "paused", "pending"):
            # auto_revert: Nomad registers the last stable version again; the deployment
            # follower then reports the rollback.
            await self.placer.cluster.fail_deployment(latest["ID"])

    async def _stuck(self, job_id: str) -> bool:
        """The job's active deployment has replicas Nomad could not place."""
        latest = next(iter(await self.placer.cluster.job_deployments(job_id)), None)
        return latest is not None and latest["Status"] == "running" and any(
            int(g.get("PlacedAllocs") or 0) < int(g.get("DesiredTotal") or 0)
            for g in (latest.get("TaskGroups") or {}).values())

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

    def check_update(self, group: TaskGroup, spec: VersionSpec) -> None:
        check_model_path(spec.model_path, self.placer.settings.model_roots)

    def check_canary(self, canary: int) -> None:
        if canary:
            raise InvalidState("canaries are not built for Nomad placement yet (Nomad's "
                               "canary = N with canary_tags); roll out without canary",
                               details={"field": "canary"})

    def update(self, group_id: str) -> None:
        # The job's update block does the rolling; registering the new version starts it.
        self.reconciler.request_registration(group_id)
