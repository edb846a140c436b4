"""Evaluation processing: the eval queue, plan application, blocked evals and deployments.

Evaluations are processed one at a time from a queue (re-entrant calls only enqueue), so a
runner that reports status synchronously cannot interleave with a half-applied plan. Writes
follow Nomad's order: the plan (`PlanResult`), then the evaluation updates (`EvaluationUpdated`,
including a blocked evaluation when placements failed). Blocked evaluations are tracked one per
job and re-run when capacity changes on a node class they could use; a re-run that still cannot
place everything stays blocked (Nomad's reblock).
"""

from __future__ import annotations

import copy
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from .gotypes import new_id, now_ns, rfc3339
from .objects import ACTIVE_DEPLOYMENT, new_eval
from .placement import Placer
from .plan import Plan
from .reconcile import Outcome, Reconciler
from .revert import revert_target
from .state import JobKey, Store

Json = dict[str, Any]
Defer = Callable[[float, Callable[[], None]], None]
AllocsHook = Callable[[list[Json]], None]

BLOCKED_DESCRIPTION = "created to place remaining allocations"


class Scheduler:
    """Runs evaluations against the store and keeps the blocked-eval tracker."""

    def __init__(self, store: Store, rng: random.Random, defer: Defer, placed: AllocsHook,
                 stopped: AllocsHook) -> None:
        self.store = store
        self.rng = rng
        self.defer = defer
        self.placed = placed
        self.stopped = stopped
        self.blocked: dict[JobKey, str] = {}
        self.progress_by: dict[str, int] = {}
        self._queue: deque[str] = deque()
        self._busy = False
        self.revert: Callable[[Json], None] | None = None  # the cluster's re-registration

    # -- queue -----------------------------------------------------------------------------

    def enqueue(self, eval_id: str) -> None:
        if eval_id not in self._queue:
            self._queue.append(eval_id)

    def run(self) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            while self._queue:
                self._process(self._queue.popleft())
        finally:
            self._busy = False

    def unblock(self, node_class: str | None) -> None:
        """Capacity changed on a node of this class: retry blocked evals that could use it."""
        for key, eval_id in list(self.blocked.items()):
            evaluation = self.store.evals.get(eval_id)
            if evaluation is None or evaluation["Status"] != "blocked":
                self.blocked.pop(key, None)
                continue
            eligibility = evaluation.get("ClassEligibility")
            if (node_class is None or evaluation["EscapedComputedClass"] or eligibility is None
                    or eligibility.get(node_class, True)):
                self.enqueue(eval_id)
        self.run()

    # -- planning --------------------------------------------------------------------------

    def plan(self, job: Json, evaluation: Json) -> Outcome:
        """Reconcile without writing anything (the /plan endpoint)."""
        key = (job["Namespace"], job["ID"])
        placer = Placer(self.store, job, Plan(), random.Random(self.rng.random()))
        return Reconciler(placer, job, evaluation, self.store.job_allocs(key),
                          self.store.latest_deployment(key)).compute()

    def _process(self, eval_id: str) -> None:
        evaluation = self.store.evals.get(eval_id)
        if evaluation is None or evaluation["Status"] not in ("pending", "blocked"):
            return
        key = (evaluation["Namespace"], evaluation["JobID"])
        job = self.store.jobs.get(key)
        placer = Placer(self.store, job or {"ID": key[1], "Namespace": key[0]}, Plan(), self.rng)
        outcome = Reconciler(placer, job, evaluation, self.store.job_allocs(key),
                             self.store.latest_deployment(key)).compute()
        followups = [(alloc, when, self._followup_eval(evaluation, when))
                     for alloc, when in outcome.followups]
        placed, stopped = self._apply_plan(outcome, followups)
        self._finish(evaluation, outcome, followups)
        # each preempted job is evaluated again (its replacement then waits for room)
        for job_key in dict.fromkeys((a["Namespace"], a["JobID"])
                                     for a in map(self.store.allocs.get, outcome.plan.preempted)
                                     if a is not None):
            if job_key in self.store.jobs:
                self.create_eval(self.store.jobs[job_key], "preemption")
        for _, when, followup in followups:
            self.defer(max(0.0, (when - now_ns()) / 1e9), self._wake(followup["ID"]))
        if stopped:
            self.stopped(stopped)
        if placed:
            self.placed(placed)

    def _wake(self, eval_id: str) -> Callable[[], None]:
        def wake() -> None:
            self.enqueue(eval_id)
            self.run()
        return wake

    def _apply_plan(self, outcome: Outcome, followups: list[tuple[Json, int, Json]]) -> tuple[
            list[Json], list[Json]]:
        plan = outcome.plan
        if plan.empty and outcome.deployment is None and not outcome.cancelled and not followups:
            return [], []
        store = self.store
        txn = store.begin("PlanResult")
        for deployment in outcome.cancelled:
            store.put_deployment(txn, deployment)
        if outcome.deployment is not None:
            store.put_deployment(txn, outcome.deployment)
            self._track_progress(outcome.deployment)
        now = now_ns()
        stopped = []
        for alloc_id, (_, reason) in plan.stop.items():
            updated = dict(store.allocs[alloc_id])
            updated.update(DesiredStatus="stop", DesiredDescription=reason, ModifyTime=now)
            if alloc_id in plan.preempted:  # Nomad evicts preempted allocations
                by = plan.preempted[alloc_id]
                updated.update(DesiredStatus="evict", PreemptedByAllocation=by,
                               DesiredDescription=f"Preempted by alloc ID {by}")
            if alloc_id in outcome.next_alloc:
                updated["NextAllocation"] = outcome.next_alloc[alloc_id]
            store.put_alloc(txn, updated)
            if updated["ClientStatus"] in ("pending", "running"):
                stopped.append(updated)
        for alloc in plan.update:
            store.put_alloc(txn, {**alloc, "ModifyTime": now})
        for alloc in plan.place:
            store.put_alloc(txn, alloc)
        for alloc, _, followup in followups:
            store.put_alloc(txn, {**store.allocs[alloc["ID"]], "FollowupEvalID": followup["ID"],
                                  "ModifyTime": now})
        store.commit(txn)
        return list(plan.place), stopped

    def _followup_eval(self, evaluation: Json, when: int) -> Json:
        job = self.store.jobs.get((evaluation["Namespace"], evaluation["JobID"])) or {}
        followup = new_eval({**evaluation, **job, "Namespace": evaluation["Namespace"]},
                            "alloc-failure", job_id=evaluation["JobID"])
        followup.update(PreviousEval=evaluation["ID"], WaitUntil=rfc3339(when),
                        StatusDescription="created for delayed rescheduling")
        return followup

    def _finish(self, evaluation: Json, outcome: Outcome,
                followups: list[tuple[Json, int, Json]]) -> None:
        store = self.store
        key = (evaluation["Namespace"], evaluation["JobID"])
        txn = store.begin("EvaluationUpdated")
        now = now_ns()
        updated = dict(evaluation)
        for _, _, followup in followups:
            store.put_eval(txn, followup)
            updated["NextEval"] = followup["ID"]
        deployment = outcome.deployment or store.latest_deployment(key)
        if evaluation["Status"] == "blocked" and outcome.failed:
            if not outcome.plan.empty:
                updated.update(ModifyTime=now, ClassEligibility=outcome.class_eligibility,
                               EscapedComputedClass=outcome.escaped)
                store.put_eval(txn, updated)
            store.commit(txn)
            return
        if outcome.failed:
            blocked = self._blocked_eval(evaluation, outcome, now)
            previous = self.blocked.get(key)
            if previous and previous in store.evals and \
                    store.evals[previous]["Status"] == "blocked":
                cancelled = dict(store.evals[previous])
                cancelled.update(Status="canceled", ModifyTime=now,
                                 StatusDescription="existing blocked evaluation exists for job "
                                                   f'"{evaluation["JobID"]}"')
                store.put_eval(txn, cancelled)
            self.blocked[key] = blocked["ID"]
            store.put_eval(txn, blocked)
            updated["BlockedEval"] = blocked["ID"]
        elif self.blocked.get(key) in (None, evaluation["ID"]) or evaluation["Status"] != "blocked":
            self.blocked.pop(key, None)
        updated.update(
            Status="complete", StatusDescription="", ModifyTime=now,
            FailedTGAllocs=copy.deepcopy(outcome.failed) or None,
            QueuedAllocations=dict(outcome.queued),
            DeploymentID=deployment["ID"] if deployment and deployment["Status"] in
            ACTIVE_DEPLOYMENT else updated["DeploymentID"])
        store.put_eval(txn, updated)
        store.commit(txn)

    def _blocked_eval(self, evaluation: Json, outcome: Outcome, now: int) -> Json:
        blocked = dict(evaluation)
        blocked.update(
            ID=new_id(), Status="blocked", TriggeredBy="queued-allocs",
            StatusDescription=BLOCKED_DESCRIPTION, PreviousEval=evaluation["ID"], NextEval="",
            BlockedEval="", FailedTGAllocs=copy.deepcopy(outcome.failed),
            ClassEligibility=outcome.class_eligibility, EscapedComputedClass=outcome.escaped,
            QueuedAllocations=None, DeploymentID="", WaitUntil=evaluation["WaitUntil"],
            CreateIndex=0, ModifyIndex=0, CreateTime=now, ModifyTime=now)
        return blocked

    # -- deployments -----------------------------------------------------------------------

    def deployment_health(self, alloc: Json, before: Json | None, txn: Any) -> str | None:
        """Fold an allocation's health change into its deployment (same write as the alloc).

        Returns the deployment ID when the deployment watcher must look at it afterwards."""
        deployment = self.store.deployments.get(alloc["DeploymentID"] or "")
        if deployment is None or deployment["Status"] != "running":
            return None
        old = ((before or {}).get("DeploymentStatus") or {}).get("Healthy")
        new = (alloc.get("DeploymentStatus") or {}).get("Healthy")
        if old == new or new is None:
            return None
        updated = copy.deepcopy(deployment)
        state = updated["TaskGroups"].get(alloc["TaskGroup"])
        if state is None:
            return None
        state["HealthyAllocs" if new else "UnhealthyAllocs"] += 1
        updated["ModifyTime"] = now_ns()
        if new and state["ProgressDeadline"]:
            state["RequireProgressBy"] = rfc3339(updated["ModifyTime"] + state["ProgressDeadline"])
            self.progress_by[updated["ID"]] = updated["ModifyTime"] + state["ProgressDeadline"]
        self.store.put_deployment(txn, updated)
        return str(updated["ID"])

    def _track_progress(self, deployment: Json) -> None:
        """Arm the progress deadline: no healthy progress in time fails the deployment."""
        deadlines = [s["ProgressDeadline"] for s in deployment["TaskGroups"].values()
                     if s["ProgressDeadline"]]
        if not deadlines or deployment["ID"] in self.progress_by:
            return
        self.progress_by[deployment["ID"]] = now_ns() + min(deadlines)
        self.defer(min(deadlines) / 1e9, self._progress_check(deployment["ID"]))

    def _progress_check(self, deployment_id: str) -> Callable[[], None]:
        def check() -> None:
            deployment = self.store.deployments.get(deployment_id)
            if deployment is None or deployment["Status"] != "running":
                self.progress_by.pop(deployment_id, None)
                return
            remaining = self.progress_by.get(deployment_id, 0) - now_ns()
            if remaining > 0:
                self.defer(remaining / 1e9, check)
                return
            self.progress_by.pop(deployment_id, None)
            self.set_deployment_status(deployment_id, "failed", "Failed due to progress deadline")
        return check

    def watch_deployment(self, deployment_id: str) -> None:
        """Nomad's deployment watcher: fail on unhealthy allocs, finish, or roll on."""
        store = self.store
        deployment = store.deployments.get(deployment_id)
        if deployment is None or deployment["Status"] != "running":
            return
        key = (deployment["Namespace"], deployment["JobID"])
        job = store.jobs.get(key)
        states = deployment["TaskGroups"].values()
        if any(s["UnhealthyAllocs"] for s in states):
            self.set_deployment_status(deployment_id, "failed",
                                       "Failed due to unhealthy allocations")
            return
        if job is not None and all(s["HealthyAllocs"] >= s["DesiredTotal"]
                                   and s["PlacedAllocs"] >= s["DesiredTotal"] for s in states):
            self.set_deployment_status(deployment_id, "successful",
                                       "Deployment completed successfully")
            return
        if job is not None:
            self.create_eval(job, "deployment-watcher", deployment_id=deployment_id)

    def set_deployment_status(self, deployment_id: str, status: str, description: str) -> Json:
        store = self.store
        updated = copy.deepcopy(store.deployments[deployment_id])
        target, suffix = revert_target(store, updated) if status == "failed" else (None, "")
        updated.update(Status=status, StatusDescription=description + suffix,
                       ModifyTime=now_ns())
        key = (updated["Namespace"], updated["JobID"])
        txn = store.begin("DeploymentStatusUpdate")
        store.put_deployment(txn, updated)
        job = store.jobs.get(key)
        if status == "successful" and job is not None and job["Version"] == updated["JobVersion"]:
            stable = {**job, "Stable": True}
            store.put_job(txn, stable, new_version=False)
            versions = store.versions.get(key) or []
            if versions and versions[0]["Version"] == stable["Version"]:
                versions[0] = stable
        evaluation = None
        if job is not None and status == "failed":
            evaluation = new_eval(job, "deployment-watcher")
            evaluation["DeploymentID"] = deployment_id
            store.put_eval(txn, evaluation)
        store.commit(txn)
        if evaluation is not None:
            self.enqueue(evaluation["ID"])
            self.run()
        if target is not None and self.revert is not None:
            self.revert(target)
        return updated

    def create_eval(self, job: Json, triggered_by: str, deployment_id: str = "",
                    msg_type: str = "EvaluationUpdated") -> Json:
        evaluation = new_eval(job, triggered_by)
        evaluation["DeploymentID"] = deployment_id
        txn = self.store.begin(msg_type)
        self.store.put_eval(txn, evaluation)
        self.store.commit(txn)
        self.enqueue(evaluation["ID"])
        self.run()
        return evaluation
