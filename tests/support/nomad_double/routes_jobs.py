"""Job endpoints: /v1/jobs, /v1/jobs/parse and everything under /v1/job/:id.

Like Nomad's `JobSpecificRequest`, paths under /v1/job/ are matched by suffix, so an unknown
suffix falls through to the job itself (and answers "job not found").
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .canonical import canonicalize
from .errors import ApiError
from .filters import matches
from .gotypes import ZERO_TIME
from .hcl import HclError, parse_job
from .httpapi import (
    api_of,
    blocking,
    json_response,
    namespace_of,
    query_bool,
    read_json,
    require,
    want_pretty,
)
from .objects import alloc_stub, alloc_terminal, job_stub
from .schema import DecodeError, decode

Json = dict[str, Any]
_SUFFIXES = ("evaluate", "allocations", "evaluations", "plan", "summary", "versions",
             "deployments", "deployment", "scale")


async def jobs(request: web.Request) -> web.StreamResponse:
    require(request, "GET", "PUT", "POST")
    if request.method == "GET":
        return await _list(request)
    return await _register(request, "")


async def parse(request: web.Request) -> web.StreamResponse:
    require(request, "PUT", "POST")
    body = _fields(await read_json(request))
    hcl = body.get("jobhcl")
    if not hcl:
        raise ApiError(400, "Job spec is empty")
    if not isinstance(hcl, str):
        raise ApiError(400, "json: cannot unmarshal into Go struct field "
                            "JobsParseRequest.JobHCL of type string")
    try:
        job = parse_job(hcl)
    except HclError as exc:
        raise ApiError(400, f"Failed to parse job: {exc}") from exc
    if body.get("canonicalize"):
        canonicalize(job)
    return json_response(job, pretty=want_pretty(request))


async def job_tail(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"]
    for suffix in _SUFFIXES:
        if tail.endswith("/" + suffix):
            job_id = tail[: -len(suffix) - 1]
            response: web.StreamResponse = await _HANDLERS[suffix](request, job_id)
            return response
    require(request, "GET", "PUT", "POST", "DELETE")
    if request.method == "GET":
        return await _read(request, tail)
    if request.method == "DELETE":
        return _deregister(request, tail)
    return await _register(request, tail)


async def _list(request: web.Request) -> web.Response:
    api = api_of(request)
    store = api.cluster.store
    namespace, prefix = namespace_of(request), request.query.get("prefix", "")
    expression, with_meta = request.query.get("filter", ""), query_bool(request, "meta")

    def produce() -> list[Json]:
        found = [job for (ns, job_id), job in sorted(store.jobs.items())
                 if (namespace == "*" or ns == namespace) and job_id.startswith(prefix)]
        return [job_stub(job, store.summaries.get((job["Namespace"], job["ID"])), with_meta)
                for job in found if not expression or matches(expression, job)]

    return await blocking(request, ("jobs",), produce)


async def _read(request: web.Request, job_id: str) -> web.Response:
    store = api_of(request).cluster.store
    key = (namespace_of(request), job_id)

    def produce() -> Json:
        job = store.jobs.get(key)
        if job is None:
            raise ApiError(404, "job not found")
        return job

    def index() -> int:
        job = store.jobs.get(key)
        return int(job["ModifyIndex"]) if job else store.table_index["jobs"]

    return await blocking(request, ("jobs",), produce, index)


async def _register(request: web.Request, path_id: str) -> web.Response:
    body = _fields(await read_json(request))
    raw_job = body.get("job")
    if raw_job is None:
        raise ApiError(400, "Job must be specified")
    job = _decode_job(raw_job)
    if job["ID"] is None:
        raise ApiError(400, "Job ID hasn't been provided")
    if path_id and job["ID"] != path_id:
        raise ApiError(400, "Job ID does not match name")
    if job["Type"] == "system" and any(g.get("Scaling") for g in job["TaskGroups"] or []):
        raise ApiError(400, "Task groups with job type system do not support scaling blocks")
    priority = body.get("evalpriority") or 0
    if priority and not 1 <= priority <= 100:
        raise ApiError(400, "Eval priority must be between 1 and 100 inclusively")
    namespace = request.query.get("namespace") or body.get("namespace") or None
    response = api_of(request).cluster.register(
        job, namespace=namespace, enforce=bool(body.get("enforceindex")),
        job_modify_index=int(body.get("jobmodifyindex") or 0),
        preserve_counts=bool(body.get("preservecounts")), eval_priority=int(priority))
    return json_response(response, index=response["Index"])


def _deregister(request: web.Request, job_id: str) -> web.Response:
    purge = query_bool(request, "purge")
    query_bool(request, "global")
    query_bool(request, "no_shutdown_delay")
    priority = request.query.get("eval_priority", "")
    if priority and not (priority.isdigit() and 1 <= int(priority) <= 100):
        raise ApiError(400, "Eval priority must be between 1 and 100 inclusively")
    response = api_of(request).cluster.deregister((namespace_of(request), job_id), purge,
                                                  int(priority or 0))
    return json_response(response, index=response["Index"])


async def _evaluate(request: web.Request, job_id: str) -> web.Response:
    require(request, "PUT", "POST")
    body = await read_json(request, allow_empty=True)
    force = False
    if body is not None:
        fields = _fields(body)
        if not fields.get("jobid"):
            raise ApiError(400, "Job ID must be specified")
        if fields["jobid"] != job_id:
            raise ApiError(400, "JobID not same as job name")
        force = bool(_fields(fields.get("evaloptions") or {}).get("forcereschedule"))
    response = api_of(request).cluster.evaluate((namespace_of(request), job_id), force)
    return json_response(response, index=response["Index"])


async def _allocations(request: web.Request, job_id: str) -> web.Response:
    require(request, "GET")
    store = api_of(request).cluster.store
    key = (namespace_of(request), job_id)

    def produce() -> list[Json]:
        allocs = sorted(store.job_allocs(key), key=lambda a: a["ID"])
        return [alloc_stub(a) for a in allocs]

    return await blocking(request, ("allocs",), produce)


async def _evaluations(request: web.Request, job_id: str) -> web.Response:
    require(request, "GET")
    store = api_of(request).cluster.store
    key = (namespace_of(request), job_id)
    return await blocking(request, ("evals",),
                          lambda: sorted(store.job_evals(key), key=lambda e: e["ID"]))


async def _deployments(request: web.Request, job_id: str) -> web.Response:
    require(request, "GET")
    store = api_of(request).cluster.store
    key = (namespace_of(request), job_id)
    return await blocking(request, ("deployment",), lambda: store.job_deployments(key))


async def _deployment(request: web.Request, job_id: str) -> web.Response:
    require(request, "GET")
    store = api_of(request).cluster.store
    key = (namespace_of(request), job_id)
    return await blocking(request, ("deployment",), lambda: store.latest_deployment(key))


async def _summary(request: web.Request, job_id: str) -> web.Response:
    require(request, "GET")
    store = api_of(request).cluster.store
    key = (namespace_of(request), job_id)

    def produce() -> Json:
        summary = store.summaries.get(key)
        if summary is None:
            raise ApiError(404, "job not found")
        return summary

    def index() -> int:
        summary = store.summaries.get(key)
        return int(summary["ModifyIndex"]) if summary else store.table_index["job_summary"]

    return await blocking(request, ("job_summary",), produce, index)


async def _versions(request: web.Request, job_id: str) -> web.Response:
    require(request, "GET")
    store = api_of(request).cluster.store
    key = (namespace_of(request), job_id)
    query_bool(request, "diffs")

    def produce() -> Json:
        versions = store.versions.get(key)
        if not versions:
            raise ApiError(404, "job versions not found")
        return {"Versions": versions, "Diffs": None, "Index": store.table_index["job_version"],
                "LastContact": 0, "KnownLeader": True, "NextToken": ""}

    return await blocking(request, ("job_version",), produce)


async def _plan(request: web.Request, job_id: str) -> web.Response:
    require(request, "PUT", "POST")
    body = _fields(await read_json(request))
    if body.get("job") is None:
        raise ApiError(400, "Job must be specified")
    job = _decode_job(body["job"])
    if job["ID"] is None:
        raise ApiError(400, "Job must have a valid ID")
    if job_id and job["ID"] != job_id:
        raise ApiError(400, "Job ID does not match")
    cluster = api_of(request).cluster
    outcome, existing = cluster.plan(job, request.query.get("namespace") or None)
    diff = None
    if body.get("diff"):
        diff = {"Type": "Added" if existing is None else "Edited", "ID": job["ID"],
                "Fields": None, "Objects": None, "TaskGroups": None}
    response = {
        "Annotations": {"DesiredTGUpdates": outcome.desired, "PreemptedAllocs": None},
        "FailedTGAllocs": outcome.failed or None,
        "JobModifyIndex": existing["JobModifyIndex"] if existing else 0,
        "CreatedEvals": None, "Diff": diff, "NextPeriodicLaunch": ZERO_TIME, "Warnings": "",
        "Index": cluster.store.index}
    return json_response(response, index=cluster.store.index)


async def _scale(request: web.Request, job_id: str) -> web.Response:
    require(request, "GET", "PUT", "POST")
    cluster = api_of(request).cluster
    store = cluster.store
    key = (namespace_of(request), job_id)
    if request.method == "GET":
        return await blocking(request, ("jobs", "allocs", "deployment", "scaling_event"),
                              lambda: _scale_status(store, key))
    body = _fields(await read_json(request))
    target = {str(k).lower(): v for k, v in (body.get("target") or {}).items()}
    if target.get("job") and target["job"] != job_id:
        raise ApiError(400, "job ID in payload did not match URL")
    if target.get("namespace") and target["namespace"] != key[0]:
        raise ApiError(400, "namespace in payload did not match header")
    count = body.get("count")
    response = cluster.scale(
        key, str(target.get("group") or ""), None if count is None else int(count),
        message=str(body.get("message") or ""), error=bool(body.get("error")),
        meta=body.get("meta"), job_modify_index=int(body.get("jobmodifyindex") or 0))
    return json_response(response, index=response["Index"])


def _scale_status(store: Any, key: tuple[str, str]) -> Json:
    job = store.jobs.get(key)
    if job is None:
        raise ApiError(404, "job not found")
    deployment = store.latest_deployment(key)
    allocs = store.job_allocs(key)
    events = store.scaling_events.get(key, {})
    groups = {}
    for group in job["TaskGroups"]:
        mine = [a for a in allocs if a["TaskGroup"] == group["Name"]]
        state = (deployment or {}).get("TaskGroups", {}).get(group["Name"]) if deployment and \
            deployment["JobVersion"] == job["Version"] else None
        groups[group["Name"]] = {
            "Desired": group["Count"],
            "Placed": state["PlacedAllocs"] if state else sum(
                1 for a in mine if not alloc_terminal(a)),
            "Running": sum(1 for a in mine if a["ClientStatus"] == "running"
                           and a["DesiredStatus"] == "run"),
            "Healthy": state["HealthyAllocs"] if state else 0,
            "Unhealthy": state["UnhealthyAllocs"] if state else 0,
            "Events": events.get(group["Name"]) or None}
    return {"JobID": job["ID"], "Namespace": job["Namespace"],
            "JobCreateIndex": job["CreateIndex"], "JobModifyIndex": job["JobModifyIndex"],
            "JobStopped": job["Stop"], "TaskGroups": groups}


def _decode_job(raw: Any) -> Json:
    try:
        return decode("Job", raw)
    except DecodeError as exc:
        raise ApiError(400, str(exc)) from exc


def _fields(body: Any) -> Json:
    """Go decodes request structs case-insensitively; keys are lower-cased for lookup."""
    if not isinstance(body, dict):
        raise ApiError(400, "json: cannot unmarshal non-object into Go value")
    return {str(k).lower(): v for k, v in body.items()}


_HANDLERS: dict[str, Any] = {
    "evaluate": _evaluate, "allocations": _allocations, "evaluations": _evaluations,
    "plan": _plan, "summary": _summary, "versions": _versions, "deployments": _deployments,
    "deployment": _deployment, "scale": _scale}
