"""What the reconciler reads out of Nomad's event frames: jobs named, allocations, job stubs."""

from __future__ import annotations

from typing import Any

JOB_PREFIX = "hf-"


def jobs_named(frame: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for event in frame.get("Events") or []:
        payload = event.get("Payload") or {}
        for obj in payload.values():
            if isinstance(obj, dict):
                job_id = obj.get("JobID") or (obj.get("ID") if event.get("Topic") == "Job"
                                              else None)
                if isinstance(job_id, str) and job_id.startswith(JOB_PREFIX):
                    found.add(job_id)
    return found


_STUB_KEYS = ("ID", "Meta", "Stop", "Status", "ModifyIndex", "JobModifyIndex")


def job_of(event: dict[str, Any]) -> dict[str, Any] | None:
    """The fields of a Job event's job that a view reads (a whole job is kilobytes)."""
    payload = event.get("Payload") or {}
    job = payload.get("Job")
    if not isinstance(job, dict) or payload.get("Deleted") or job.get("ID") != event["Key"]:
        return None
    return {k: job.get(k) for k in _STUB_KEYS}


def alloc_of(event: dict[str, Any]) -> dict[str, Any] | None:
    alloc = (event.get("Payload") or {}).get("Allocation")
    if event.get("Topic") != "Allocation" or not isinstance(alloc, dict):
        return None
    job_id = alloc.get("JobID")
    ok = isinstance(job_id, str) and job_id.startswith(JOB_PREFIX) and alloc.get("ID")
    return alloc if ok else None
