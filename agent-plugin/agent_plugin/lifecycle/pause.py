"""The fallback for engines without a sleep API: freeze the engine. A local task's process
group gets SIGSTOP/SIGCONT through the executor; a container Nomad started is paused
through the Docker engine (cgroup freezer). Either way the engine stops computing but
keeps its GPU memory, and the answer says so.
"""

from __future__ import annotations

from agent_plugin.docker import DockerClient
from agent_plugin.errors import SleepUnsupported
from agent_plugin.executor import Executor, TaskState
from agent_plugin.lifecycle.base import SleepOutcome, SleepTarget

KEPT = "compute paused, GPU memory kept"


class ExecutorPause:
    mode = "paused"
    releases_gpu_memory = False

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def sleep(self, target: SleepTarget) -> SleepOutcome:
        if self._executor.status(target.task_id).state == TaskState.PAUSED:
            return SleepOutcome(self.mode, False, f"was paused already: {KEPT}", changed=False)
        await self._executor.pause(target.task_id)
        return SleepOutcome(self.mode, False, f"{KEPT} (SIGSTOP of its process group)")

    async def wake(self, target: SleepTarget) -> SleepOutcome:
        if self._executor.status(target.task_id).state != TaskState.PAUSED:
            return SleepOutcome(self.mode, False, "was not paused", changed=False)
        await self._executor.resume(target.task_id)
        return SleepOutcome(self.mode, False, "resumed (SIGCONT of its process group)")


class DockerPause:
    mode = "paused"
    releases_gpu_memory = False

    def __init__(self, docker: DockerClient) -> None:
        self._docker = docker

    async def sleep(self, target: SleepTarget) -> SleepOutcome:
        changed = await self._docker.pause(_container(target))
        words = f"{KEPT} (docker pause)" if changed else f"was paused already: {KEPT}"
        return SleepOutcome(self.mode, False, words, changed=changed)

    async def wake(self, target: SleepTarget) -> SleepOutcome:
        changed = await self._docker.unpause(_container(target))
        return SleepOutcome(self.mode, False,
                            "resumed (docker unpause)" if changed else "was not paused",
                            changed=changed)


def _container(target: SleepTarget) -> str:
    if not target.container:
        raise SleepUnsupported(f"task {target.task_id} names no container to pause")
    return target.container
