"""The reconciler: what must change for a job's allocations to match its spec.

A simplified Nomad `AllocReconciler`: per group it keeps healthy allocations, stops extras
(highest index first), replaces allocations whose spec changed (limited by `max_parallel` while
a deployment is rolling, halted when it failed), updates in place when only non-destructive
fields changed, reschedules failed allocations by their reschedule policy (now, later through a
follow-up evaluation, or never), replaces migrated (stopped-by-API) allocations and places what
is missing. Placements go through `Placer`; the first failure of a group is kept as its metric
and the rest are coalesced into it. Nothing here writes state: the result is a `Plan` plus an
`Outcome` that the scheduler applies (or that `/plan` reports).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from .gotypes import now_ns
from .objects import (
    ACTIVE_DEPLOYMENT,
    alloc_terminal,
    deployment_state,
    new_alloc,
    new_deployment,
)
from .placement import Placer
from .plan import Plan
from .preemption import preempt

Json = dict[str, Any]

ALLOC_NOT_NEEDED = "alloc not needed due to job update"
ALLOC_UPDATING = "alloc is being updated due to job update"
ALLOC_RESCHEDULED = "alloc was rescheduled because it failed"
ALLOC_MIGRATING = "alloc is being migrated"
_IN_PLACE_FIELDS = ("Count", "Scaling", "Update", "Migrate", "ReschedulePolicy", "RestartPolicy")


@dataclass
class Outcome:
    """Everything an evaluation decided besides the plan itself."""

    plan: Plan
    failed: dict[str, Json] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    desired: dict[str, Json] = field(default_factory=dict)
    deployment: Json | None = None
    cancelled: list[Json] = field(default_factory=list)
    followups: list[tuple[Json, int]] = field(default_factory=list)
    next_alloc: dict[str, str] = field(default_factory=dict)
    class_eligibility: dict[str, bool] | None = None
    escaped: bool = False


def desired_updates() -> Json:
    keys = ("Ignore", "Place", "Migrate", "Stop", "InPlaceUpdate", "DestructiveUpdate", "Canary",
            "Preemptions", "Disconnect", "Reconnect", "RescheduleNow", "RescheduleLater")
    return dict.fromkeys(keys, 0)


def group_fingerprint(job: Json, group_name: str) -> str:
    """What a destructive update compares: the group minus count/update policies, plus the
    job-level fields that reach tasks or placement (meta, constraints, affinities, spreads)."""
    group = next((g for g in job.get("TaskGroups") or [] if g["Name"] == group_name), None)
    if group is None:
        return ""
    material = {k: v for k, v in group.items() if k not in _IN_PLACE_FIELDS}
    material["_job"] = {k: job.get(k) for k in ("Meta", "Constraints", "Affinities", "Spreads")}
    return json.dumps(material, sort_keys=True)


class Reconciler:
    """Computes the plan for one evaluation of one job."""

    def __init__(self, placer: Placer, job: Json | None, evaluation: Json, allocs: list[Json],
                 deployment: Json | None) -> None:
        self.placer = placer
        self.job = job
        self.evaluation = evaluation
        self.allocs = allocs
        self.latest = deployment
        self.outcome = Outcome(plan=placer.plan)
        self.now = now_ns()
        self._fingerprints: dict[tuple[int, int, str], str] = {}

    def compute(self) -> Outcome:
        job, outcome = self.job, self.outcome
        if job is None or job["Stop"]:
            for alloc in self.allocs:
                if not alloc_terminal(alloc):
                    outcome.plan.add_stop(alloc, ALLOC_NOT_NEEDED)
                    group = outcome.desired.setdefault(alloc["TaskGroup"], desired_updates())
                    group["Stop"] += 1
            if self.latest is not None and self.latest["Status"] in ACTIVE_DEPLOYMENT:
                outcome.cancelled.append(_with_status(self.latest, "cancelled",
                                                      "Cancelled because job is stopped"))
            return outcome
        current = self.latest
        if current is not None and (current["JobVersion"] != job["Version"]
                                    or current["JobCreateIndex"] != job["CreateIndex"]):
            if current["Status"] in ACTIVE_DEPLOYMENT:
                outcome.cancelled.append(_with_status(
                    current, "cancelled", "Cancelled due to newer version of job"))
            current = None
        self.current = current
        names = {g["Name"] for g in job.get("TaskGroups") or []}
        for alloc in self.allocs:
            if alloc["TaskGroup"] not in names and not alloc_terminal(alloc):
                outcome.plan.add_stop(alloc, ALLOC_NOT_NEEDED)
        for group in job.get("TaskGroups") or []:
            self._group(group, [a for a in self.allocs if a["TaskGroup"] == group["Name"]])
        outcome.class_eligibility = self.placer.feasibility.class_eligibility()
        outcome.escaped = self.placer.feasibility.escaped
        return outcome

    # -- one group -------------------------------------------------------------------------

    def _group(self, group: Json, allocs: list[Json]) -> None:
        assert self.job is not None
        job, outcome = self.job, self.outcome
        desired = outcome.desired.setdefault(group["Name"], desired_updates())
        live, migrate, now, later, kept = [], [], [], [], []
        for alloc in allocs:
            if alloc["DesiredStatus"] != "run" or alloc["NextAllocation"]:
                continue
            status = alloc["ClientStatus"]
            if status in ("pending", "running", "unknown"):
                if (alloc.get("DesiredTransition") or {}).get("Migrate"):
                    migrate.append(alloc)
                else:
                    live.append(alloc)
            elif status == "failed":
                # `job eval -force-reschedule`: now, whatever the policy says
                if (alloc.get("DesiredTransition") or {}).get("ForceReschedule"):
                    now.append(alloc)
                    continue
                when = self._reschedule_at(alloc, group)
                if when is None:
                    kept.append(alloc)
                elif when <= self.now or alloc["FollowupEvalID"] == self.evaluation["ID"]:
                    now.append(alloc)
                else:
                    later.append((alloc, when))
            elif status == "complete" and job["Type"] == "batch":
                kept.append(alloc)
        occupying = sorted([*live, *migrate, *now, *kept, *(a for a, _ in later)],
                           key=_alloc_index, reverse=True)
        excess = len(occupying) - group["Count"]
        stopped: set[str] = set()
        for alloc in occupying[:max(excess, 0)]:
            self.outcome.plan.add_stop(alloc, ALLOC_NOT_NEEDED)
            stopped.add(alloc["ID"])
            desired["Stop"] += 1
        live = [a for a in live if a["ID"] not in stopped]
        migrate = [a for a in migrate if a["ID"] not in stopped]
        now = [a for a in now if a["ID"] not in stopped]
        later = [(a, t) for a, t in later if a["ID"] not in stopped]
        kept = [a for a in kept if a["ID"] not in stopped]

        placements: list[tuple[str, Json | None, str]] = []
        for alloc in now:
            placements.append((alloc["Name"], alloc, "reschedule"))
            desired["RescheduleNow"] += 1
            desired["Place"] += 1
        for alloc, when in later:
            desired["RescheduleLater"] += 1
            if not alloc["FollowupEvalID"]:
                outcome.followups.append((alloc, when))
        for alloc in migrate:
            outcome.plan.add_stop(alloc, ALLOC_MIGRATING)
            placements.append((alloc["Name"], alloc, "migrate"))
            desired["Migrate"] += 1
        target = self._fingerprint(job, group["Name"])
        outdated = [a for a in live if self._fingerprint(a["Job"], group["Name"]) != target]
        outdated_ids = {a["ID"] for a in outdated}
        limit = self._update_limit(group, live, outdated_ids)
        for alloc in outdated[:limit]:
            outcome.plan.add_stop(alloc, ALLOC_UPDATING)
            placements.append((alloc["Name"], alloc, "update"))
            desired["DestructiveUpdate"] += 1
        desired["Ignore"] += max(0, len(outdated) - limit)
        in_place: list[Json] = []
        for alloc in live:
            if alloc["ID"] in outdated_ids:
                continue
            if not same_version(alloc["Job"], job):
                updated = dict(alloc)
                updated["Job"] = job
                outcome.plan.update.append(updated)
                in_place.append(updated)
                desired["InPlaceUpdate"] += 1
            else:
                desired["Ignore"] += 1
        used = {_alloc_index(a) for a in [*live, *migrate, *now, *kept, *(a for a, _ in later)]}
        missing = group["Count"] - len(live) - len(migrate) - len(now) - len(kept) - len(later)
        index = 0
        for _ in range(max(missing, 0)):
            while index in used:
                index += 1
            used.add(index)
            placements.append((f"{job['ID']}.{group['Name']}[{index}]", None, "new"))
            desired["Place"] += 1
        self._place(group, placements, bool(outdated or now or migrate), in_place)

    def _place(self, group: Json, placements: list[tuple[str, Json | None, str]],
               updating: bool, in_place: list[Json] | None = None) -> None:
        assert self.job is not None
        outcome = self.outcome
        deployment = self._deployment_for(group, bool(placements), updating)
        if deployment is not None and group["Name"] in deployment["TaskGroups"]:
            # As Nomad's generic scheduler does: an allocation updated in place joins the
            # new deployment (counted as placed), and its client reports its health again;
            # a task that kept running healthy is reported healthy at once here.
            state = deployment["TaskGroups"][group["Name"]]
            for updated in in_place or []:
                if updated.get("DeploymentID") == deployment["ID"]:
                    continue
                was_healthy = bool((updated.get("DeploymentStatus") or {}).get("Healthy"))
                updated["DeploymentID"] = deployment["ID"]
                state["PlacedAllocs"] += 1
                if was_healthy and updated["ClientStatus"] == "running":
                    updated["DeploymentStatus"] = {**updated["DeploymentStatus"],
                                                   "Healthy": True}
                    state["HealthyAllocs"] += 1
                else:
                    updated["DeploymentStatus"] = None
        failure: Json | None = None
        queued = 0
        for name, previous, reason in placements:
            if failure is not None:
                failure["CoalescedFailures"] += 1
                queued += 1
                continue
            penalty = {previous["NodeID"]} if previous is not None and reason == "reschedule" \
                else None
            choice, metric = self.placer.select(group, penalty)
            victims: list[Json] = []
            if choice is None and self.job["Type"] == "service" \
                    and self.placer.store.preempt_service:
                found = preempt(self.placer, group)
                if found is not None:
                    choice, victims = found
            if choice is None:
                failure = metric
                queued += 1
                continue
            alloc = new_alloc(job=self.job, group=group, eval_id=self.evaluation["ID"],
                              name=name, node=choice.node, resources=choice.resources,
                              metric=metric, previous=previous["ID"] if previous else "")
            if victims:
                alloc["PreemptedAllocations"] = [v["ID"] for v in victims]
                outcome.plan.preempted.update({v["ID"]: alloc["ID"] for v in victims})
                outcome.desired.setdefault(group["Name"], desired_updates())[
                    "Preemptions"] += len(victims)
            if deployment is not None and group["Name"] in deployment["TaskGroups"]:
                alloc["DeploymentID"] = deployment["ID"]
                deployment["TaskGroups"][group["Name"]]["PlacedAllocs"] += 1
            if previous is not None:
                outcome.next_alloc[previous["ID"]] = alloc["ID"]
                if reason == "reschedule":
                    alloc["RescheduleTracker"] = _tracker(previous, self.now, group)
                    outcome.plan.add_stop(previous, ALLOC_RESCHEDULED)
            outcome.plan.add_place(alloc)
        if failure is not None:
            outcome.failed[group["Name"]] = failure
        outcome.queued[group["Name"]] = queued

    # -- deployments, updates, rescheduling --------------------------------------------------

    def _deployment_for(self, group: Json, placing: bool, updating: bool) -> Json | None:
        assert self.job is not None
        update = group.get("Update") or {}
        if self.job["Type"] != "service" or not update.get("MaxParallel"):
            return None
        outcome = self.outcome
        if outcome.deployment is not None:
            deployment = outcome.deployment
        elif self.current is not None:
            if self.current["Status"] not in ACTIVE_DEPLOYMENT:
                return None
            deployment = outcome.deployment = copy.deepcopy(self.current)
        else:
            had_running = any(same_version(a["Job"], self.job) for a in self.allocs)
            if not placing or (had_running and not updating):
                return None
            deployment = outcome.deployment = new_deployment(self.job,
                                                             self.evaluation["Priority"])
        deployment["TaskGroups"].setdefault(group["Name"], deployment_state(group))
        return deployment

    def _update_limit(self, group: Json, live: list[Json], outdated: set[str]) -> int:
        update = group.get("Update") or {}
        parallel = update.get("MaxParallel") or 0
        if not parallel or self.job is None or self.job["Type"] != "service":
            return len(outdated)
        if self.current is not None and self.current["Status"] == "failed":
            return 0
        in_flight = sum(1 for a in live if a["ID"] not in outdated and not _healthy(a))
        return max(0, parallel - in_flight)

    def _fingerprint(self, job: Json, group_name: str) -> str:
        key = (job.get("CreateIndex") or 0, job.get("Version") or 0, group_name)
        if key not in self._fingerprints:
            self._fingerprints[key] = group_fingerprint(job, group_name)
        return self._fingerprints[key]

    def _reschedule_at(self, alloc: Json, group: Json) -> int | None:
        """When a failed allocation may be replaced, or None when its policy is used up."""
        policy = group.get("ReschedulePolicy")
        if not policy:
            return None
        events = (alloc.get("RescheduleTracker") or {}).get("Events") or []
        if not policy.get("Unlimited"):
            interval = policy.get("Interval") or 0
            recent = [e for e in events if not interval
                      or self.now - e["RescheduleTime"] < interval]
            if len(recent) >= (policy.get("Attempts") or 0):
                return None
        return int(alloc["ModifyTime"]) + next_delay(policy, events)


def same_version(a: Json | None, b: Json) -> bool:
    return a is not None and a.get("Version") == b.get("Version") and a.get(
        "CreateIndex") == b.get("CreateIndex")


def next_delay(policy: Json, events: list[Json]) -> int:
    base = policy.get("Delay") or 0
    function = policy.get("DelayFunction") or "constant"
    maximum = policy.get("MaxDelay") or 0
    if not events or function == "constant":
        delay = base
    elif function == "exponential":
        delay = events[-1]["Delay"] * 2
    else:
        previous = [e["Delay"] for e in events[-2:]]
        delay = sum(previous) if len(previous) == 2 else base
    return min(delay, maximum) if maximum else delay


def _tracker(previous: Json, now: int, group: Json) -> Json:
    events = list((previous.get("RescheduleTracker") or {}).get("Events") or [])
    events.append({"RescheduleTime": now, "PrevAllocID": previous["ID"],
                   "PrevNodeID": previous["NodeID"],
                   "Delay": next_delay(group.get("ReschedulePolicy") or {}, events)})
    return {"Events": events, "LastReschedule": "ok"}


def _healthy(alloc: Json) -> bool:
    return bool((alloc.get("DeploymentStatus") or {}).get("Healthy"))


def _alloc_index(alloc: Json) -> int:
    name = alloc["Name"]
    try:
        return int(name[name.rindex("[") + 1:-1])
    except ValueError:
        return 0


def _with_status(deployment: Json, status: str, description: str) -> Json:
    updated = copy.deepcopy(deployment)
    updated["Status"] = status
    updated["StatusDescription"] = description
    updated["ModifyTime"] = now_ns()
    return updated
