"""Request bodies of the agent's API (the wire contract, validated strictly), and their
conversion into what the executor and the sleep logic take."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_plugin.docker import CONTAINER_REF
from agent_plugin.errors import InvalidRequest
from agent_plugin.executor import RestartMode, RestartPolicy, TaskSpec
from agent_plugin.lifecycle import SleepTarget
from agent_plugin.tasks import TaskMeta

# Task ids name log files: no separators, no leading dot.
TaskId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$")]
Address = Annotated[str, Field(pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$")]
SleepApi = Literal["vllm", "sglang"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RestartIn(Strict):
    attempts: Annotated[int, Field(ge=0, le=1000)] = 2
    delay_seconds: Annotated[float, Field(ge=0, le=86_400)] = 15.0
    mode: Literal["fail", "delay"] = "fail"


class StartTaskIn(Strict):
    task_id: TaskId
    argv: Annotated[list[Annotated[str, Field(max_length=65_536)]],
                    Field(min_length=1, max_length=4096)]
    env: dict[str, str] = Field(default_factory=dict)
    port: Annotated[int, Field(ge=1, le=65535)]
    gpu_vendor: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    gpu_ids: list[int | str] = Field(default_factory=list, max_length=1024)
    restart: RestartIn = RestartIn()
    health_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._~/?&=%-]{0,255}$")] = "/health"
    engine: Annotated[str, Field(max_length=64)] = ""
    sleep_api: SleepApi | None = None
    idle_timeout_minutes: Annotated[int, Field(ge=0, le=525_600)] = 0


class RemoteSleepIn(Strict):
    task_id: TaskId
    address: Address | None = None
    sleep_api: SleepApi | None = None
    container: Annotated[str, Field(pattern=CONTAINER_REF.pattern)] | None = None


def task_spec(body: StartTaskIn, log_dir: Path) -> tuple[TaskSpec, TaskMeta]:
    restart = RestartPolicy(attempts=body.restart.attempts, delay_s=body.restart.delay_seconds,
                            mode=RestartMode(body.restart.mode))
    try:
        spec = TaskSpec(task_id=body.task_id, argv=tuple(body.argv), port=body.port,
                        log_path=log_dir / f"{body.task_id}.log", env=dict(body.env),
                        gpu_vendor=body.gpu_vendor, gpu_ids=tuple(body.gpu_ids),
                        restart=restart, ready_paths=(body.health_path,))
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return spec, TaskMeta(engine=body.engine, sleep_api=body.sleep_api,
                          idle_timeout_minutes=body.idle_timeout_minutes)


def remote_target(body: RemoteSleepIn) -> SleepTarget:
    return SleepTarget(task_id=body.task_id, address=body.address, container=body.container)
