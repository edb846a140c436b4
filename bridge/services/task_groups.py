"""Task groups: the seed's eight creation steps in one transaction (docs/product.md,
"Lifecycle"), reads, and delete."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bridge.domain import ids
from bridge.domain.engines import engine_from_image, why_engine_cannot_run
from bridge.domain.models import (
    CPU_CAPABLE_ENGINES,
    Algorithm,
    ApiKey,
    Engine,
    InferenceEndpoint,
    ModelRoute,
    Task,
    TaskGroup,
)
from bridge.domain.queries import GroupFilter, TaskFilter
from bridge.domain.specs import TaskGroupSpec
from bridge.domain.status import (
    DELETABLE_GROUP_STATES,
    RollingUpdateState,
    TaskGroupStatus,
    TaskStatus,
)
from bridge.domain.topology import Topology, TopologyError, plan_topology
from bridge.errors import (
    Conflict,
    DuplicateKey,
    InvalidState,
    NameTaken,
    NotFound,
    ValidationFailed,
)
from bridge.placement.port import PlacementPort
from bridge.services.context import Actor
from bridge.storage import api_keys as key_rows
from bridge.storage import audit
from bridge.storage import endpoints as endpoint_rows
from bridge.storage import model_routes as route_rows
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Conn, Database
from heteroflow_contracts.credentials import hash_secret, secret_prefix


@dataclass(frozen=True, slots=True)
class CreatedTaskGroup:
    group: TaskGroup
    route: ModelRoute | None
    endpoint: InferenceEndpoint | None
    api_key: ApiKey | None
    api_key_secret: str | None  # clear text, returned once, never stored


async def create_task_group(
    db: Database, spec: TaskGroupSpec, actor: Actor, placement: PlacementPort | None = None
) -> CreatedTaskGroup:
    # 1. validate what the schema cannot see on its own (cross-field rules)
    engine = spec.engine or engine_from_image(spec.image)
    if spec.gpu_required == 0 and engine not in CPU_CAPABLE_ENGINES:
        raise ValidationFailed(
            "gpu_required 0 means CPU only, which only llamacpp and transformers can serve",
            details={"field": "gpu_required", "engine": engine.value if engine else None},
        )
    if engine is not None and spec.gpu_required > 0:
        reason = why_engine_cannot_run(engine, spec.gpu_type, cpu_only=False)
        if reason:
            raise ValidationFailed(reason, details={"field": "engine", "engine": engine.value})
    if placement is not None:
        placement.validate(spec)
    # 2. compute the node count (and task count, GPUs per task)
    try:
        topo = plan_topology(spec.parallelism, spec.gpu_required, spec.world_size)
    except TopologyError as exc:
        raise ValidationFailed(str(exc), details={"field": exc.field}) from exc

    group = _new_group(spec, topo, engine, actor)
    tasks = _new_tasks(group, topo)
    route = endpoint = None
    if spec.enable_api:
        route = ModelRoute(
            id=ids.new_route_id(), model_name=group.model_name, task_group_id=group.id,
            engine=engine.value if engine else None, priority=spec.route.priority,
            weight=spec.route.weight, version=spec.route.version,
            algorithm=spec.route.algorithm, status="active",
        )
        endpoint = InferenceEndpoint(
            id=ids.new_endpoint_id(), name=group.name, task_group_id=group.id,
            protocol="http", port=spec.port.container,
            algorithm=spec.route.algorithm or Algorithm.ROUND_ROBIN,
            health_check=spec.health_check,
        )
        group = replace(group, endpoint_id=endpoint.id)

    key = secret = None
    try:
        # One round trip for steps 3-8: the rows do not depend on each other's answers.
        async with db.transaction() as conn, conn.pipeline():
            await group_rows.insert_task_group(conn, group)  # 3
            await group_rows.insert_tasks(conn, tasks)  # 4
            if route is not None and endpoint is not None:
                await route_rows.insert_route(conn, route)  # 5
                await endpoint_rows.insert_endpoint(conn, endpoint)  # 6
                key, secret = await issue_api_key(conn, endpoint.id, "default", actor)  # 7
            await audit.append(  # 8
                conn, actor=actor.principal, action="task_group.create",
                object_type="task_group", object_id=group.id,
                request_id=actor.request_id,
                details={"name": group.name, "tasks": len(tasks),
                         "endpoint": group.endpoint_id,
                         "route": route.id if route else None,
                         "api_key": key.id if key else None},
            )
            # Last: reading its answer sends the pipeline, still one round trip.
            at = await group_rows.transaction_time(conn)
    except DuplicateKey as exc:
        raise _conflict(exc, spec) from exc
    stored = replace(group, created_at=at, updated_at=at,
                     tasks=[replace(t, created_at=at, updated_at=at) for t in tasks])
    if route is not None:
        route = replace(route, created_at=at, updated_at=at)
    if endpoint is not None:
        endpoint = replace(endpoint, created_at=at)
    if key is not None:
        key = replace(key, created_at=at)
    if placement is not None:
        placement.submit(stored.id)  # placed after commit: a placement outage loses nothing
    return CreatedTaskGroup(stored, route, endpoint, key, secret)


async def issue_api_key(
    conn: Conn, endpoint_id: str, name: str, actor: Actor
) -> tuple[ApiKey, str]:
    """Create a gateway key inside the caller's transaction; return it and its clear text.

    The returned key's ``created_at`` is left for the caller (it is the transaction's time).
    """
    secret = ids.new_api_key()
    key = ApiKey(id=ids.new_api_key_id(), endpoint_id=endpoint_id, name=name,
                 prefix=secret_prefix(secret),
                 created_by=actor.principal.user_id if actor.principal else None,
                 created_at=None, last_used_at=None, revoked_at=None)
    await key_rows.insert_api_key(conn, key, key_hash=hash_secret(secret))
    return key, secret


async def get_task_group(db: Database, group_id: str) -> TaskGroup:
    async with db.transaction() as conn:
        group = await group_rows.get_task_group(conn, group_id)
    if group is None:
        raise NotFound(f"no task group {group_id}", details={"id": group_id})
    return group


async def list_task_groups(
    db: Database, flt: GroupFilter, *, limit: int, offset: int
) -> tuple[list[TaskGroup], int]:
    async with db.transaction() as conn:
        return await group_rows.list_task_groups(conn, flt, limit=limit, offset=offset)


async def delete_task_group(
    db: Database, group_id: str, actor: Actor, placement: PlacementPort | None = None
) -> TaskGroup:
    """Delete a group with its tasks, endpoint, routes and keys, in the states that allow it.

    What placement runs for it is withdrawn first, outside any transaction; if that fails
    the rows stay, so nothing is left running without a row that knows about it.
    """
    async with db.transaction() as conn:
        group = await _deletable(conn, group_id)
    if placement is not None:
        await placement.withdraw(group)
    async with db.transaction() as conn:
        group = await _deletable(conn, group_id, lock=True)
        await group_rows.delete_task_group(conn, group_id)
        await audit.append(
            conn, actor=actor.principal, action="task_group.delete", object_type="task_group",
            object_id=group_id, request_id=actor.request_id,
            details={"name": group.name, "status": group.status.value,
                     "tasks": [t.id for t in group.tasks]},
        )
    return group


async def _deletable(conn: Conn, group_id: str, *, lock: bool = False) -> TaskGroup:
    group = await group_rows.get_task_group(conn, group_id, for_update=lock)
    if group is None:
        raise NotFound(f"no task group {group_id}", details={"id": group_id})
    if group.status not in DELETABLE_GROUP_STATES:
        allowed = sorted(s.value for s in DELETABLE_GROUP_STATES)
        raise InvalidState(
            f"task group {group.name} is {group.status.value}; it can be deleted when "
            f"{', '.join(allowed)}. Stop its tasks first.",
            details={"status": group.status.value, "allowed": allowed},
        )
    return group


async def list_tasks(
    db: Database, flt: TaskFilter, *, limit: int, offset: int
) -> tuple[list[Task], int]:
    async with db.transaction() as conn:
        items = await group_rows.list_tasks(conn, flt, limit=limit, offset=offset)
        return items, await group_rows.count_tasks(conn, flt)


async def get_task(db: Database, task_id: str) -> Task:
    async with db.transaction() as conn:
        task = await group_rows.get_task(conn, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}", details={"id": task_id})
    return task


def _new_group(
    spec: TaskGroupSpec, topo: Topology, engine: Engine | None, actor: Actor
) -> TaskGroup:
    return TaskGroup(
        id=ids.new_task_group_id(), name=spec.name, status=TaskGroupStatus.PENDING,
        status_reason="waiting for placement", parallelism=topo.parallelism,
        world_size=topo.world_size, node_count=topo.node_count, current_replicas=0,
        min_replicas=spec.min_replicas, max_replicas=spec.max_replicas,
        auto_scale=spec.auto_scale, endpoint_id=None,
        rolling_update_state=RollingUpdateState.IDLE,
        idle_timeout_minutes=spec.idle_timeout_minutes, timeout_seconds=spec.timeout_seconds,
        image=spec.image, engine=engine,
        command=spec.command, model_path=spec.model_path,
        model_name=spec.model_name or spec.name, gpu_required=topo.gpus_per_task,
        gpu_type=spec.gpu_type, ports=[spec.port], qos=spec.qos,
        estimated_gpu_memory_mb=spec.estimated_gpu_memory_mb, enable_api=spec.enable_api,
        health_check=spec.health_check, scale_policy=spec.scale_policy,
        co_schedule=spec.co_schedule, schedule_window=spec.schedule_window,
        created_by=actor.principal.user_id if actor.principal else None,
    )


def _new_tasks(group: TaskGroup, topo: Topology) -> list[Task]:
    ports = [p.as_json() for p in group.ports]
    return [
        Task(
            id=ids.new_task_id(group.id, rank), group_id=group.id, rank=rank,
            status=TaskStatus.PENDING, status_reason="waiting for placement",
            image=group.image, gpu_required=topo.gpus_per_task,
            gpu_type=group.gpu_type.value if group.gpu_type else None, gpu_id=None,
            node_id=None, model_path=group.model_path, ports=ports, volumes=[],
            estimated_gpu_memory_mb=group.estimated_gpu_memory_mb,
        )
        for rank in range(topo.task_count)
    ]


def _conflict(exc: DuplicateKey, spec: TaskGroupSpec) -> Conflict:
    if exc.constraint in ("task_groups_name_key", "inference_endpoints_name_key"):
        return NameTaken(f"a service named {spec.name!r} already exists; pick another name",
                         details={"field": "name", "name": spec.name})
    if exc.constraint == "model_routes_model_name_version_key":
        model = spec.model_name or spec.name
        return Conflict(
            f"model {model!r} already has a route with version {spec.route.version!r}; "
            "give this service another route.version (e.g. canary) to run it beside the other",
            details={"field": "route.version", "model_name": model,
                     "version": spec.route.version},
        )
    return Conflict(f"conflicts with an existing object ({exc.constraint})",
                    details={"constraint": exc.constraint})
