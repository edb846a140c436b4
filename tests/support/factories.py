"""Domain objects for tests, with overridable defaults."""

from __future__ import annotations

from typing import Any

from bridge.domain import ids
from bridge.domain.models import Engine, HealthCheck, PortMapping, QoS, TaskGroup
from bridge.domain.status import RollingUpdateState, TaskGroupStatus
from bridge.domain.topology import Parallelism


def make_task_group(**over: Any) -> TaskGroup:
    values: dict[str, Any] = dict(
        id=ids.new_task_group_id(), name="qwen", status=TaskGroupStatus.PENDING,
        status_reason="", parallelism=Parallelism.NONE, world_size=1, node_count=1,
        current_replicas=0, min_replicas=1, max_replicas=0, auto_scale=False,
        endpoint_id=None, rolling_update_state=RollingUpdateState.IDLE,
        idle_timeout_minutes=0, timeout_seconds=0, image="vllm/vllm-openai:v0.11.0",
        engine=Engine.VLLM, command=None, model_path="/models/Qwen2.5-7B-Instruct",
        model_name="qwen2.5-7b", gpu_required=1, gpu_type=None,
        ports=[PortMapping(container=8000)], qos=QoS.GOLD, estimated_gpu_memory_mb=None,
        enable_api=True, health_check=HealthCheck(), scale_policy=None, co_schedule=None,
        schedule_window=None, tasks=[],
    )
    values.update(over)
    return TaskGroup(**values)
