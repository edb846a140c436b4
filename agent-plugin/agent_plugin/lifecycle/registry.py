"""Which driver sleeps a task: the engine's own sleep API when it has one (by the
``sleep_api`` name the bridge sends), else the pause fallback that fits where the engine
runs. A new sleep API is one driver module and one line in ``SLEEP_APIS``.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from agent_plugin.docker import DockerClient
from agent_plugin.errors import SleepUnsupported
from agent_plugin.executor import Executor
from agent_plugin.lifecycle.base import SleepDriver, SleepTarget
from agent_plugin.lifecycle.pause import DockerPause, ExecutorPause
from agent_plugin.lifecycle.sglang import SglangSleep
from agent_plugin.lifecycle.vllm import VllmSleep

SLEEP_APIS: dict[str, Callable[[httpx.AsyncClient, float], SleepDriver]] = {
    "vllm": VllmSleep,
    "sglang": SglangSleep,
}


class Sleepers:
    def __init__(self, client: httpx.AsyncClient, executor: Executor,
                 docker: DockerClient | None, timeout_s: float) -> None:
        self._apis = {name: make(client, timeout_s) for name, make in SLEEP_APIS.items()}
        self._local = ExecutorPause(executor)
        self._docker = DockerPause(docker) if docker is not None else None

    def driver(self, sleep_api: str | None, target: SleepTarget) -> SleepDriver:
        if sleep_api is not None:
            try:
                return self._apis[sleep_api]
            except KeyError:
                raise SleepUnsupported(f"no sleep API {sleep_api!r} is known; known: "
                                       f"{', '.join(self._apis)}") from None
        if target.local:
            return self._local
        if target.container:
            if self._docker is None:
                raise SleepUnsupported("no Docker engine is configured to pause "
                                       f"{target.container} (DOCKER_HOST)")
            return self._docker
        raise SleepUnsupported(f"task {target.task_id} has no sleep API and names no "
                               "container to pause")
