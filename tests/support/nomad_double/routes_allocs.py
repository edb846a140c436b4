"""Allocation, evaluation and deployment endpoints."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .errors import ApiError
from .filters import matches
from .httpapi import api_of, blocking, json_response, query_bool, read_json, require
from .objects import alloc_stub

Json = dict[str, Any]


async def allocations(request: web.Request) -> web.StreamResponse:
    require(request, "GET")
    store = api_of(request).cluster.store
    namespace = request.query.get("namespace") or "default"
    prefix, expression = request.query.get("prefix", ""), request.query.get("filter", "")
    resources = query_bool(request, "resources")
    task_states = request.query.get("task_states", "true").lower() not in ("false", "0", "f")

    def produce() -> list[Json]:
        out = []
        for alloc_id in sorted(store.allocs):
            alloc = store.allocs[alloc_id]
            if namespace != "*" and alloc["Namespace"] != namespace:
                continue
            if not alloc_id.startswith(prefix) or (expression and not matches(expression, alloc)):
                continue
            out.append(alloc_stub(alloc, with_resources=resources, task_states=task_states))
        return out

    return await blocking(request, ("allocs",), produce)


async def allocation(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"]
    cluster = api_of(request).cluster
    if tail.endswith("/stop"):
        require(request, "PUT", "POST")
        query_bool(request, "no_shutdown_delay")
        alloc_id = tail[: -len("/stop")]
        if alloc_id not in cluster.store.allocs:
            raise ApiError(404, "allocation not found")
        response = cluster.stop_alloc(alloc_id)
        return json_response(response, index=response["Index"])
    if tail.endswith("/services"):
        require(request, "GET")
        return json_response([], index=cluster.store.index)
    require(request, "GET")
    store = cluster.store

    def produce() -> Json:
        alloc = store.allocs.get(tail)
        if alloc is None:
            raise ApiError(404, "alloc not found")
        return alloc

    def index() -> int:
        alloc = store.allocs.get(tail)
        return int(alloc["ModifyIndex"]) if alloc else store.table_index["allocs"]

    return await blocking(request, ("allocs",), produce, index)


async def evaluations(request: web.Request) -> web.StreamResponse:
    require(request, "GET")
    store = api_of(request).cluster.store
    namespace = request.query.get("namespace") or "default"
    job, status = request.query.get("job", ""), request.query.get("status", "")
    prefix, expression = request.query.get("prefix", ""), request.query.get("filter", "")

    def produce() -> list[Json]:
        out = []
        for eval_id in sorted(store.evals):
            evaluation = store.evals[eval_id]
            if namespace != "*" and evaluation["Namespace"] != namespace:
                continue
            if (job and evaluation["JobID"] != job) or (status and evaluation["Status"] != status):
                continue
            if not eval_id.startswith(prefix) or (expression and not matches(expression,
                                                                              evaluation)):
                continue
            out.append(evaluation)
        return out

    return await blocking(request, ("evals",), produce)


async def evaluation(request: web.Request) -> web.StreamResponse:
    require(request, "GET")
    tail = request.match_info["tail"]
    store = api_of(request).cluster.store
    if tail.endswith("/allocations"):
        eval_id = tail[: -len("/allocations")]
        return await blocking(request, ("allocs",), lambda: [
            alloc_stub(a) for a in sorted(store.allocs.values(), key=lambda a: a["ID"])
            if a["EvalID"] == eval_id])
    related = query_bool(request, "related")

    def produce() -> Json:
        found = store.evals.get(tail)
        if found is None:
            raise ApiError(404, "eval not found")
        if not related:
            return found
        key = (found["Namespace"], found["JobID"])
        stubs = [_eval_stub(e) for e in sorted(store.job_evals(key), key=lambda e: e["ID"])
                 if e["ID"] != found["ID"]]
        return {**found, "RelatedEvals": stubs}

    return await blocking(request, ("evals",), produce)


async def deployments(request: web.Request) -> web.StreamResponse:
    require(request, "GET")
    store = api_of(request).cluster.store
    namespace = request.query.get("namespace") or "default"
    return await blocking(request, ("deployment",), lambda: [
        d for d in sorted(store.deployments.values(), key=lambda d: d["CreateIndex"],
                          reverse=True)
        if namespace == "*" or d["Namespace"] == namespace])


async def deployment(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"]
    cluster = api_of(request).cluster
    action, _, deployment_id = tail.partition("/")
    if action in ("fail", "promote", "pause", "unblock", "allocation-health") and deployment_id:
        require(request, "PUT", "POST")
        if action == "fail":
            response = cluster.fail_deployment(deployment_id)
            return json_response(response, index=response["Index"])
        body = await read_json(request)
        fields = {str(k).lower(): v for k, v in (body or {}).items()}
        if not fields.get("deploymentid"):
            raise ApiError(400, "DeploymentID must be specified")
        if fields["deploymentid"] != deployment_id:
            raise ApiError(400, "Deployment ID does not match")
        if action != "promote":
            raise ApiError(500, f"the Nomad API double does not implement deployment {action}")
        groups = None if fields.get("all") else list(fields.get("groups") or [])
        response = cluster.promote_deployment(deployment_id, groups)
        return json_response(response, index=response["Index"])
    require(request, "GET")
    store = cluster.store
    if action == "allocations" and deployment_id:
        return await blocking(request, ("allocs",), lambda: [
            alloc_stub(a) for a in sorted(store.allocs.values(), key=lambda a: a["ID"])
            if a["DeploymentID"] == deployment_id])

    def produce() -> Json:
        found = store.deployments.get(tail)
        if found is None:
            raise ApiError(404, "deployment not found")
        return found

    return await blocking(request, ("deployment",), produce)


def _eval_stub(evaluation: Json) -> Json:
    keys = ("ID", "Namespace", "Priority", "Type", "TriggeredBy", "JobID", "NodeID",
            "DeploymentID", "Status", "StatusDescription", "WaitUntil", "NextEval",
            "PreviousEval", "BlockedEval", "CreateIndex", "ModifyIndex", "CreateTime",
            "ModifyTime")
    return {k: evaluation.get(k) for k in keys}
