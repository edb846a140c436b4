"""Builders for the server objects Nomad returns: evaluations, allocations, deployments, stubs.

Every builder writes all the fields Go's encoder writes (zero values and nulls included), so a
client that works against the double does not trip over a missing key against a real server.
"""

from __future__ import annotations

from typing import Any

from .gotypes import ZERO_TIME, new_id, now_ns, rfc3339

Json = dict[str, Any]

TERMINAL_CLIENT = ("complete", "failed", "lost")
ACTIVE_DEPLOYMENT = ("running", "paused", "pending", "blocked", "unblocking")


def alloc_terminal(alloc: Json) -> bool:
    """Allocation.TerminalStatus: stopping, evicted, or finished on the client."""
    return alloc["DesiredStatus"] in ("stop", "evict") or alloc["ClientStatus"] in TERMINAL_CLIENT


def new_eval(job: Json, triggered_by: str, *, status: str = "pending", namespace: str | None = None,
             job_id: str | None = None, priority: int | None = None) -> Json:
    now = now_ns()
    return {
        "ID": new_id(), "Namespace": namespace or job["Namespace"],
        "Priority": priority if priority is not None else job.get("Priority", 50),
        "Type": job.get("Type", "service"), "TriggeredBy": triggered_by,
        "JobID": job_id or job["ID"], "JobModifyIndex": job.get("JobModifyIndex", 0),
        "NodeID": "", "NodeModifyIndex": 0, "DeploymentID": "", "Status": status,
        "StatusDescription": "", "Wait": 0, "WaitUntil": ZERO_TIME, "NextEval": "",
        "PreviousEval": "", "BlockedEval": "", "RelatedEvals": None, "FailedTGAllocs": None,
        "PlanAnnotations": None, "ClassEligibility": None, "QuotaLimitReached": "",
        "MissingNonNodeResources": None, "EscapedComputedClass": False, "AnnotatePlan": False,
        "QueuedAllocations": None, "LeaderACL": "", "SnapshotIndex": 0, "CreateIndex": 0,
        "ModifyIndex": 0, "CreateTime": now, "ModifyTime": now,
    }


def new_metric(nodes_available: dict[str, int], pool: str, nodes_in_pool: int) -> Json:
    return {"NodesEvaluated": 0, "NodesFiltered": 0, "NodesInPool": nodes_in_pool,
            "NodePool": pool, "NodesAvailable": nodes_available, "ClassFiltered": None,
            "ConstraintFiltered": None, "NodesExhausted": 0, "ClassExhausted": None,
            "DimensionExhausted": None, "QuotaExhausted": None, "ResourcesExhausted": None,
            "Scores": None, "ScoreMetaData": None, "AllocationTime": 0, "CoalescedFailures": 0}


def task_state(events: list[Json] | None = None) -> Json:
    return {"State": "pending", "Failed": False, "Restarts": 0, "LastRestart": ZERO_TIME,
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME, "Events": events or [],
            "Paused": ""}


def task_event(event_type: str, message: str = "", display: str | None = None,
               details: dict[str, str] | None = None, **extra: Any) -> Json:
    event: Json = {
        "Type": event_type, "Time": now_ns(), "Message": message,
        "DisplayMessage": display if display is not None else message,
        "Details": details or {}, "FailsTask": False, "RestartReason": "", "SetupError": "",
        "DriverError": "", "ExitCode": 0, "Signal": 0, "KillTimeout": 0, "KillError": "",
        "KillReason": "", "StartDelay": 0, "DownloadError": "", "ValidationError": "",
        "DiskLimit": 0, "FailedSibling": "", "VaultError": "", "TaskSignalReason": "",
        "TaskSignal": "", "DriverMessage": "", "GenericSource": ""}
    event.update(extra)
    return event


def new_alloc(*, job: Json, group: Json, eval_id: str, name: str, node: Json,
              resources: Json, metric: Json, deployment_id: str = "",
              previous: str = "") -> Json:
    now = now_ns()
    return {
        "ID": new_id(), "Namespace": job["Namespace"], "EvalID": eval_id, "Name": name,
        "NodeID": node["ID"], "NodeName": node["Name"], "JobID": job["ID"], "Job": job,
        "TaskGroup": group["Name"], "Resources": None, "SharedResources": None,
        "TaskResources": None, "AllocatedResources": resources, "Metrics": metric,
        "DesiredStatus": "run", "DesiredDescription": "",
        "DesiredTransition": {"Migrate": None, "Reschedule": None, "ForceReschedule": None,
                              "NoShutdownDelay": None},
        "ClientStatus": "pending", "ClientDescription": "",
        "TaskStates": None, "AllocStates": None, "PreviousAllocation": previous,
        "NextAllocation": "", "DeploymentID": deployment_id, "DeploymentStatus": None,
        "RescheduleTracker": None, "NetworkStatus": None, "FollowupEvalID": "",
        "PreemptedAllocations": None, "PreemptedByAllocation": "", "SigningKeyID": "",
        "CreateIndex": 0, "ModifyIndex": 0, "AllocModifyIndex": 0, "CreateTime": now,
        "ModifyTime": now,
    }


def alloc_stub(alloc: Json, with_resources: bool = False, task_states: bool = True) -> Json:
    """AllocListStub: what list endpoints return (no AllocatedResources unless asked)."""
    stub: Json = {
        "ID": alloc["ID"], "EvalID": alloc["EvalID"], "Name": alloc["Name"],
        "Namespace": alloc["Namespace"], "NodeID": alloc["NodeID"],
        "NodeName": alloc["NodeName"], "JobID": alloc["JobID"],
        "JobType": alloc["Job"]["Type"] if alloc["Job"] else "",
        "JobVersion": alloc["Job"]["Version"] if alloc["Job"] else 0,
        "TaskGroup": alloc["TaskGroup"], "DesiredStatus": alloc["DesiredStatus"],
        "DesiredDescription": alloc["DesiredDescription"],
        "ClientStatus": alloc["ClientStatus"], "ClientDescription": alloc["ClientDescription"],
        "DesiredTransition": alloc["DesiredTransition"],
        "TaskStates": alloc["TaskStates"] if task_states else None,
        "DeploymentStatus": alloc["DeploymentStatus"],
        "FollowupEvalID": alloc["FollowupEvalID"], "NextAllocation": alloc["NextAllocation"],
        "RescheduleTracker": alloc["RescheduleTracker"],
        "PreemptedAllocations": alloc["PreemptedAllocations"],
        "PreemptedByAllocation": alloc["PreemptedByAllocation"],
        "CreateIndex": alloc["CreateIndex"], "ModifyIndex": alloc["ModifyIndex"],
        "CreateTime": alloc["CreateTime"], "ModifyTime": alloc["ModifyTime"],
    }
    if with_resources:
        stub["AllocatedResources"] = alloc["AllocatedResources"]
    return stub


def new_deployment(job: Json, eval_priority: int) -> Json:
    now = now_ns()
    return {
        "ID": new_id(), "Namespace": job["Namespace"], "JobID": job["ID"],
        "JobVersion": job["Version"], "JobModifyIndex": job["ModifyIndex"],
        "JobSpecModifyIndex": job["JobModifyIndex"], "JobCreateIndex": job["CreateIndex"],
        "IsMultiregion": False, "TaskGroups": {}, "Status": "running",
        "StatusDescription": "Deployment is running", "EvalPriority": eval_priority,
        "CreateIndex": 0, "ModifyIndex": 0, "CreateTime": now, "ModifyTime": now,
    }


def deployment_state(group: Json) -> Json:
    update = group.get("Update") or {}
    deadline = update.get("ProgressDeadline") or 0
    return {"AutoRevert": bool(update.get("AutoRevert")),
            "AutoPromote": bool(update.get("AutoPromote")), "ProgressDeadline": deadline,
            "RequireProgressBy": rfc3339(now_ns() + deadline) if deadline else ZERO_TIME,
            "Promoted": False, "PlacedCanaries": None, "DesiredCanaries": 0,
            "DesiredTotal": group["Count"], "PlacedAllocs": 0, "HealthyAllocs": 0,
            "UnhealthyAllocs": 0}


def job_stub(job: Json, summary: Json | None, with_meta: bool) -> Json:
    stub: Json = {
        "ID": job["ID"], "ParentID": job.get("ParentID", ""), "Name": job["Name"],
        "Namespace": job["Namespace"], "Datacenters": job["Datacenters"],
        "NodePool": job["NodePool"], "Multiregion": job.get("Multiregion"),
        "Type": job["Type"], "Priority": job["Priority"],
        "Periodic": job.get("Periodic") is not None,
        "ParameterizedJob": job.get("ParameterizedJob") is not None, "Stop": job["Stop"],
        "Status": job["Status"], "StatusDescription": job["StatusDescription"],
        "JobSummary": summary, "CreateIndex": job["CreateIndex"],
        "ModifyIndex": job["ModifyIndex"], "JobModifyIndex": job["JobModifyIndex"],
        "SubmitTime": job["SubmitTime"],
    }
    if with_meta:
        stub["Meta"] = job.get("Meta")
    return stub


def new_summary(job: Json) -> Json:
    return {"JobID": job["ID"], "Namespace": job["Namespace"],
            "Summary": {g["Name"]: empty_group_summary() for g in job.get("TaskGroups") or []},
            "Children": {"Pending": 0, "Running": 0, "Dead": 0}, "CreateIndex": 0,
            "ModifyIndex": 0}


def empty_group_summary() -> Json:
    return {"Queued": 0, "Complete": 0, "Failed": 0, "Running": 0, "Starting": 0, "Lost": 0,
            "Unknown": 0}


def node_stub(node: Json, with_resources: bool) -> Json:
    stub: Json = {
        "Address": node["HTTPAddr"].rsplit(":", 1)[0], "ID": node["ID"],
        "Datacenter": node["Datacenter"], "Name": node["Name"], "NodePool": node["NodePool"],
        "NodeClass": node["NodeClass"], "Version": node["Attributes"].get("nomad.version", ""),
        "Drain": node.get("DrainStrategy") is not None,
        "SchedulingEligibility": node["SchedulingEligibility"], "Status": node["Status"],
        "StatusDescription": node["StatusDescription"], "Drivers": node["Drivers"],
        "HostVolumes": node.get("HostVolumes"), "LastDrain": node.get("LastDrain"),
        "CreateIndex": node["CreateIndex"], "ModifyIndex": node["ModifyIndex"],
    }
    if with_resources:
        stub["NodeResources"] = node["NodeResources"]
        stub["ReservedResources"] = node["ReservedResources"]
    return stub


def register_response(eval_id: str, eval_index: int, job_modify_index: int, index: int,
                      warnings: str = "") -> Json:
    return {"EvalID": eval_id, "EvalCreateIndex": eval_index, "JobModifyIndex": job_modify_index,
            "Warnings": warnings, "Index": index, "LastContact": 0, "KnownLeader": False,
            "NextToken": ""}
