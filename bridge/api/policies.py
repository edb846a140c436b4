"""PUT /api/v1/task-groups/{id}/scale-policy and /schedule-window (docs/policies.md)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from bridge.api.http import actor, db, operation, parse_body, respond, runtime
from bridge.api.policy_schemas import ScalePolicyUpdate, ScheduleWindowUpdate
from bridge.api.schemas import TaskGroupOut
from bridge.services import policies as service

bp = Blueprint("policies", url_prefix="/api/v1")


@operation(bp, "PUT", "/task-groups/{id}/scale-policy", summary="Autoscaling: on/off, "
           "bounds, metric, target, cooldown and delays; the bridge's leader acts on it",
           access="write", body=ScalePolicyUpdate, response=TaskGroupOut)
async def put_scale_policy(request: Request, id: str) -> HTTPResponse:
    body = parse_body(request, ScalePolicyUpdate)
    policy = None
    if body.metric is not None and body.target_value is not None:
        policy = {"metric": body.metric, "target_value": body.target_value,
                  "cooldown_seconds": body.cooldown_seconds}
        if body.up_delay_seconds is not None:
            policy["up_delay_seconds"] = body.up_delay_seconds
        if body.down_delay_seconds is not None:
            policy["down_delay_seconds"] = body.down_delay_seconds
    change = service.ScalePolicyChange(auto_scale=body.auto_scale,
                                       min_replicas=body.min_replicas,
                                       max_replicas=body.max_replicas, policy=policy)
    group = await service.set_scale_policy(db(request), id, change, actor(request),
                                           runtime(request).placement)
    return respond(TaskGroupOut, group)


@operation(bp, "PUT", "/task-groups/{id}/schedule-window", summary="When the service runs: "
           "weekday or cron windows in an IANA zone; outside them it sleeps or runs a fixed "
           "count", access="write", body=ScheduleWindowUpdate, response=TaskGroupOut)
async def put_schedule_window(request: Request, id: str) -> HTTPResponse:
    body = parse_body(request, ScheduleWindowUpdate)
    window = None
    if body.windows:
        window = body.model_dump(mode="json", exclude_none=True)
        window["windows"] = [w.model_dump(mode="json", exclude_none=True) for w in body.windows]
    group = await service.set_schedule_window(db(request), id, window, actor(request))
    return respond(TaskGroupOut, group)
