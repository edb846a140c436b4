"""/api/v1/model-routes: canary weights, priority tiers, per-route algorithm."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bridge.api.http import QueryParam, actor, db, operation, parse_body, respond, runtime, str_arg
from bridge.api.schemas import CreateRoute, RouteOut, UpdateRoute
from bridge.services import routes as service

bp = Blueprint("model_routes", url_prefix="/api/v1")


@operation(bp, "GET", "/model-routes", summary="List model routes", response=list[RouteOut],
           query=(QueryParam("model_name", "filter by model"),
                  QueryParam("task_group_id", "filter by task group")))
async def list_routes(request: Request) -> HTTPResponse:
    routes = await service.list_routes(db(request), model_name=str_arg(request, "model_name"),
                                       task_group_id=str_arg(request, "task_group_id"))
    return json([RouteOut.model_validate(r).model_dump(mode="json") for r in routes])


@operation(bp, "POST", "/model-routes", summary="Add a route: a canary version of a local "
           "service, or an external OpenAI-compatible upstream (its key stored encrypted)",
           access="write", body=CreateRoute, response=RouteOut, status=201)
async def create_route(request: Request) -> HTTPResponse:
    body = parse_body(request, CreateRoute)
    route = await service.create_route(
        db(request), model_name=body.model_name, task_group_id=body.task_group_id,
        weight=body.weight, priority=body.priority, version=body.version,
        algorithm=body.algorithm, status=body.status, actor=actor(request),
        upstream_url=body.upstream_url, upstream_key=body.upstream_key,
        upstream_model=body.upstream_model, box=runtime(request).secrets,
        first_byte_timeout_s=body.first_byte_timeout_s,
    )
    return respond(RouteOut, route, status=201)


@operation(bp, "GET", "/model-routes/{id}", summary="One model route", response=RouteOut)
async def get_route(request: Request, id: str) -> HTTPResponse:
    return respond(RouteOut, await service.get_route(db(request), id))


@operation(bp, "PUT", "/model-routes/{id}", summary="Change weight, priority, version, "
           "algorithm or status", access="write", body=UpdateRoute, response=RouteOut)
async def update_route(request: Request, id: str) -> HTTPResponse:
    body = parse_body(request, UpdateRoute)
    changes = body.model_dump(exclude_unset=True)
    route = await service.update_route(db(request), id, changes, actor(request),
                                       box=runtime(request).secrets)
    return respond(RouteOut, route)


@operation(bp, "DELETE", "/model-routes/{id}", summary="Remove a route", access="write",
           response=RouteOut)
async def delete_route(request: Request, id: str) -> HTTPResponse:
    return respond(RouteOut, await service.delete_route(db(request), id, actor(request)))
