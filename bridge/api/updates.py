"""/api/v1/task-groups/{id}/update, /versions, /versions/{n}/revert and /start (issue 11)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bridge.api.http import actor, db, operation, parse_body, respond, runtime
from bridge.api.schemas import TaskGroupOut
from bridge.api.update_schemas import UpdateTaskGroup, VersionList, VersionOut
from bridge.domain.models import HealthCheck
from bridge.domain.versions import UpdateRequest
from bridge.errors import NotFound
from bridge.services import operations, updates

bp = Blueprint("updates", url_prefix="/api/v1")


@operation(bp, "PUT", "/task-groups/{id}/update", summary="Roll out a new version (image, "
           "command, engine args, model path, env or health check): rolling, max_parallel at "
           "a time, or recreate; a version that fails its health check rolls back by itself",
           access="write", body=UpdateTaskGroup, response=TaskGroupOut)
async def update_group(request: Request, id: str) -> HTTPResponse:
    body = parse_body(request, UpdateTaskGroup)
    hc = body.health_check
    req = UpdateRequest(
        image=body.image, command=body.command,
        engine_args=tuple(body.engine_args) if body.engine_args is not None else None,
        model_path=body.model_path, env=body.env,
        health_check=HealthCheck(type=hc.type, path=hc.path,
                                 interval_seconds=hc.interval_seconds,
                                 timeout_seconds=hc.timeout_seconds,
                                 unhealthy_threshold=hc.unhealthy_threshold) if hc else None,
        strategy=body.strategy, max_parallel=body.max_parallel,
        healthy_deadline_s=float(body.healthy_deadline_seconds), canary=body.canary,
        canary_percent=body.canary_percent)
    group = await updates.update_group(db(request), runtime(request).placement, id, req,
                                       actor(request))
    return respond(TaskGroupOut, group)


@operation(bp, "GET", "/task-groups/{id}/versions", summary="Every version of a service, "
           "with what changed from the one before", response=VersionList)
async def list_versions(request: Request, id: str) -> HTTPResponse:
    group = await updates.get_group(db(request), id)
    items = await updates.list_versions(db(request), id)
    out = VersionList(current=group.version, items=[
        VersionOut(version=v.version, spec=v.spec.as_json(), changes=v.changes,
                   strategy=v.strategy, note=v.note, created_by=v.created_by,
                   created_at=v.created_at) for v in items])
    return json(out.model_dump(mode="json"))


@operation(bp, "POST", "/task-groups/{id}/versions/{n}/revert", summary="Go back to version "
           "n: its spec becomes a new version, rolled out one replica at a time",
           access="write", response=TaskGroupOut)
async def revert(request: Request, id: str, n: str) -> HTTPResponse:
    if not n.isdigit() or int(n) < 1:
        # a path that names no version names no resource: 404, as for an unknown group
        raise NotFound(f"no version {n!r}: versions are numbered from 1",
                       details={"id": id, "version": n})
    group = await updates.revert(db(request), runtime(request).placement, id, int(n),
                                 actor(request))
    return respond(TaskGroupOut, group)


@operation(bp, "POST", "/task-groups/{id}/start", summary="Start a stopped service again "
           "(its completed tasks are placed again, on its current version)", access="write",
           response=TaskGroupOut)
async def start_group(request: Request, id: str) -> HTTPResponse:
    group = await operations.start_group(db(request), runtime(request).placement, id,
                                         actor(request))
    return respond(TaskGroupOut, group)


@operation(bp, "POST", "/task-groups/{id}/rollout/fail", summary="Abandon the rollout in "
           "progress: the service goes back to the version it came from (on Nomad the "
           "deployment is failed and auto_revert reverts it)", access="write",
           response=TaskGroupOut)
async def fail_rollout(request: Request, id: str) -> HTTPResponse:
    group = await updates.abandon(db(request), runtime(request).placement, id, actor(request))
    return respond(TaskGroupOut, group)


@operation(bp, "POST", "/task-groups/{id}/rollout/promote", summary="The canaries held: "
           "replace the remaining replicas with the new version", access="write",
           response=TaskGroupOut)
async def promote_rollout(request: Request, id: str) -> HTTPResponse:
    return respond(TaskGroupOut, await updates.promote(db(request), id, actor(request)))
