"""/api/v1/task-groups and /api/v1/tasks."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json, text

from bridge.api.http import (
    QueryParam,
    actor,
    db,
    operation,
    page_params,
    parse_body,
    respond,
    respond_page,
    runtime,
    str_arg,
)
from bridge.api.policy_schemas import PolicyStatusOut, TaskGroupWithPolicyOut
from bridge.api.schemas import (
    ApiKeyOut,
    CreatedTaskGroupOut,
    CreateTaskGroup,
    EndpointOut,
    NewApiKeyOut,
    Page,
    RouteOut,
    ScaleRequest,
    TaskGroupOut,
    TaskOut,
    TaskStateReport,
    parse_ports,
)
from bridge.domain.models import HealthCheck, PortMapping
from bridge.domain.queries import GroupFilter, TaskFilter
from bridge.domain.specs import RouteSpec, TaskGroupSpec
from bridge.domain.topology import Parallelism
from bridge.errors import ValidationFailed
from bridge.placement.port import PlacementPort
from bridge.services import operations, policies, task_ops
from bridge.services import task_groups as service

bp = Blueprint("task_groups", url_prefix="/api/v1")

_PAGE = (QueryParam("limit", "page size, 1-500 (default 50)", "integer"),
         QueryParam("offset", "items to skip (default 0)", "integer"))


@operation(bp, "POST", "/task-groups", summary="Create a service: group, tasks, route, "
           "endpoint and API key in one transaction", access="write", body=CreateTaskGroup,
           response=CreatedTaskGroupOut, status=201)
async def create_task_group(request: Request) -> HTTPResponse:
    body = parse_body(request, CreateTaskGroup)
    created = await service.create_task_group(db(request), spec_from_request(body),
                                              actor(request), placement(request))
    key = None
    if created.api_key is not None and created.api_key_secret is not None:
        key = NewApiKeyOut(**ApiKeyOut.model_validate(created.api_key).model_dump(),
                           key=created.api_key_secret)
    out = CreatedTaskGroupOut(
        **TaskGroupOut.model_validate(created.group).model_dump(),
        route=RouteOut.model_validate(created.route) if created.route else None,
        inference_endpoint=(EndpointOut.model_validate(created.endpoint)
                            if created.endpoint else None),
        api_key=key,
    )
    return json(out.model_dump(mode="json"), status=201)


@operation(bp, "GET", "/task-groups", summary="List services", response=Page[TaskGroupOut],
           query=(QueryParam("status", "filter by status"),
                  QueryParam("name", "filter by a part of the name"),
                  QueryParam("model_name", "filter by served model name"), *_PAGE))
async def list_task_groups(request: Request) -> HTTPResponse:
    limit, offset = page_params(request)
    flt = GroupFilter(status=str_arg(request, "status"), name=str_arg(request, "name"),
                      model_name=str_arg(request, "model_name"))
    items, total = await service.list_task_groups(db(request), flt, limit=limit, offset=offset)
    return respond_page(TaskGroupOut, items, total, limit, offset)


@operation(bp, "GET", "/task-groups/{id}", summary="One service with its tasks and what "
           "its autoscaler and windows last decided", response=TaskGroupWithPolicyOut)
async def get_task_group(request: Request, id: str) -> HTTPResponse:
    group = await service.get_task_group(db(request), id)
    state = await policies.policy_state(db(request), id)
    out = TaskGroupWithPolicyOut(**TaskGroupOut.model_validate(group).model_dump(),
                                 policy=PolicyStatusOut.model_validate(state) if state else None)
    return json(out.model_dump(mode="json"))


@operation(bp, "DELETE", "/task-groups/{id}", summary="Delete a pending, completed or failed "
           "service with its tasks, route, endpoint and keys", access="write",
           response=TaskGroupOut)
async def delete_task_group(request: Request, id: str) -> HTTPResponse:
    group = await service.delete_task_group(db(request), id, actor(request), placement(request))
    return respond(TaskGroupOut, group)


@operation(bp, "GET", "/task-groups/{id}/jobspec", summary="The Nomad job this service "
           "renders to (HCL2, runnable with `nomad job run`), or with plan=true Nomad's plan",
           response=None, media="text/plain",
           query=(QueryParam("plan", "true: answer Nomad's plan for the job (JSON) instead "
                             "of the HCL"),))
async def get_jobspec(request: Request, id: str) -> HTTPResponse:
    placer = runtime(request).placer
    if str_arg(request, "plan") in ("true", "1"):
        return json(await placer.plan(id))
    rendered = await placer.render(id)
    return text(rendered.hcl, headers={"x-heteroflow-engine": rendered.engine.value,
                                       "x-heteroflow-vram": rendered.vram_note},
                content_type="text/plain; charset=utf-8")


@operation(bp, "GET", "/tasks", summary="List tasks", response=Page[TaskOut],
           query=(QueryParam("group_id", "filter by task group"),
                  QueryParam("status", "filter by status"),
                  QueryParam("node_id", "filter by node"), *_PAGE))
async def list_tasks(request: Request) -> HTTPResponse:
    limit, offset = page_params(request)
    flt = TaskFilter(group_id=str_arg(request, "group_id"), status=str_arg(request, "status"),
                     node_id=str_arg(request, "node_id"))
    items, total = await service.list_tasks(db(request), flt, limit=limit, offset=offset)
    return respond_page(TaskOut, items, total, limit, offset)


@operation(bp, "GET", "/tasks/{id}", summary="One task", response=TaskOut)
async def get_task(request: Request, id: str) -> HTTPResponse:
    return respond(TaskOut, await service.get_task(db(request), id))


@operation(bp, "PUT", "/task-groups/{id}/scale", summary="Change the number of replicas "
           "(on Nomad through its scale API; refused while a deployment rolls out)",
           access="write", body=ScaleRequest, response=TaskGroupOut)
async def scale_group(request: Request, id: str) -> HTTPResponse:
    body = parse_body(request, ScaleRequest)
    group = await operations.scale_group(db(request), placement(request), id, body.replicas,
                                         actor(request))
    return respond(TaskGroupOut, group)


@operation(bp, "POST", "/tasks/{id}/stop", summary="Stop a task's engine", access="write",
           response=TaskOut)
async def stop_task(request: Request, id: str) -> HTTPResponse:
    task = await operations.stop_task(db(request), placement(request), id, actor(request))
    return respond(TaskOut, task)


@operation(bp, "POST", "/tasks/{id}", summary="Task actions: ?action=retry places a failed "
           "task again", access="write", response=TaskOut,
           query=(QueryParam("action", "retry"),))
async def task_action(request: Request, id: str) -> HTTPResponse:
    action = str_arg(request, "action")
    if action != "retry":
        raise ValidationFailed(f"unknown action {action!r}; the one action is retry",
                               details={"fields": [{"field": "action",
                                                    "message": "must be retry"}]})
    task = await operations.retry_task(db(request), placement(request), id, actor(request))
    return respond(TaskOut, task)


@operation(bp, "POST", "/tasks/{id}/sleep", summary="Put a running task to sleep (vLLM and "
           "SGLang release GPU memory; other engines are paused and keep it)", access="write",
           response=TaskOut)
async def sleep_task(request: Request, id: str) -> HTTPResponse:
    task = await task_ops.sleep_task(db(request), runtime(request).agents,
                                     runtime(request).secrets, id, actor(request))
    return respond(TaskOut, task)


@operation(bp, "POST", "/tasks/{id}/wake", summary="Wake a sleeping task (sleeping -> waking "
           "-> running)", access="wake", response=TaskOut)
async def wake_task(request: Request, id: str) -> HTTPResponse:
    task = await task_ops.wake_task(db(request), runtime(request).agents,
                                    runtime(request).secrets, id, actor(request))
    return respond(TaskOut, task)


@operation(bp, "POST", "/agent/tasks/{id}/state", summary="A node agent reports a task's "
           "state (started, running, asleep, failed, ...)", access="agent",
           body=TaskStateReport, response=TaskOut)
async def report_task_state(request: Request, id: str) -> HTTPResponse:
    body = parse_body(request, TaskStateReport)
    report = task_ops.StateReport(state=body.state, reason=body.reason, address=body.address,
                                  exit_code=body.exit_code, sleep_mode=body.sleep_mode,
                                  gpu_memory_released=body.gpu_memory_released)
    task = await task_ops.report_task_state(db(request), id, report, actor(request))
    return respond(TaskOut, task)


def placement(request: Request) -> PlacementPort | None:
    return runtime(request).placement


def spec_from_request(body: CreateTaskGroup) -> TaskGroupSpec:
    container, host = parse_ports(body.ports)
    hc = body.health_check
    return TaskGroupSpec(
        name=body.name, image=body.image, model_path=body.model_path, engine=body.engine,
        command=body.command, model_name=body.model_name,
        parallelism=body.parallelism or Parallelism.NONE, world_size=body.world_size,
        gpu_required=body.gpu_required, gpu_type=body.gpu_type,
        port=PortMapping(container=container, host=host),
        timeout_seconds=body.timeout_seconds, idle_timeout_minutes=body.idle_timeout_minutes,
        enable_api=body.enable_api,
        route=RouteSpec(weight=body.route.weight, priority=body.route.priority,
                        version=body.route.version, algorithm=body.route.algorithm),
        qos=body.qos, estimated_gpu_memory_mb=body.estimated_gpu_memory_mb,
        health_check=HealthCheck(type=hc.type, path=hc.path,
                                 interval_seconds=hc.interval_seconds,
                                 timeout_seconds=hc.timeout_seconds,
                                 unhealthy_threshold=hc.unhealthy_threshold),
        scale_policy=body.scale_policy.model_dump() if body.scale_policy else None,
        co_schedule=body.co_schedule.model_dump() if body.co_schedule else None,
        schedule_window=body.schedule_window.model_dump() if body.schedule_window else None,
        min_replicas=body.min_replicas, max_replicas=body.max_replicas,
        auto_scale=body.auto_scale,
    )

