"""vLLM's sleep mode: ``POST /sleep?level=1`` offloads the weights to CPU memory and frees
the KV cache, ``POST /wake_up`` brings them back, ``GET /is_sleeping`` tells which. The
server must run with ``--enable-sleep-mode`` and ``VLLM_SERVER_DEV_MODE=1``, or these paths
do not exist. Level 1 only: level 2 discards the weights and needs a reload after waking.
"""

from __future__ import annotations

import httpx

from agent_plugin.errors import EngineRefused
from agent_plugin.lifecycle.base import SleepOutcome, SleepTarget, engine_call

_HINT = " (start vLLM with --enable-sleep-mode and VLLM_SERVER_DEV_MODE=1)"


class VllmSleep:
    mode = "vllm"
    releases_gpu_memory = True

    def __init__(self, client: httpx.AsyncClient, timeout_s: float) -> None:
        self._client, self._timeout = client, timeout_s

    async def sleep(self, target: SleepTarget) -> SleepOutcome:
        if await self._is_sleeping(target):
            return SleepOutcome(self.mode, True, "was already asleep (vLLM sleep mode)",
                                changed=False)
        await engine_call(self._client, "POST", target, "/sleep?level=1",
                          timeout_s=self._timeout, missing_hint=_HINT)
        if not await self._is_sleeping(target):
            raise EngineRefused(f"vLLM of task {target.task_id} took the sleep call but "
                                "/is_sleeping still says false")
        return SleepOutcome(self.mode, True, "asleep (vLLM sleep level 1): weights offloaded "
                                             "to CPU memory, GPU memory released")

    async def wake(self, target: SleepTarget) -> SleepOutcome:
        if not await self._is_sleeping(target):
            return SleepOutcome(self.mode, False, "was awake already", changed=False)
        await engine_call(self._client, "POST", target, "/wake_up", timeout_s=self._timeout,
                          missing_hint=_HINT)
        if await self._is_sleeping(target):
            raise EngineRefused(f"vLLM of task {target.task_id} took the wake call but "
                                "/is_sleeping still says true")
        return SleepOutcome(self.mode, False, "awake: vLLM woke up and holds its GPU memory "
                                              "again")

    async def _is_sleeping(self, target: SleepTarget) -> bool:
        response = await engine_call(self._client, "GET", target, "/is_sleeping",
                                     timeout_s=self._timeout, missing_hint=_HINT)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        sleeping = answer.get("is_sleeping") if isinstance(answer, dict) else None
        if not isinstance(sleeping, bool):
            raise EngineRefused(f"/is_sleeping of task {target.task_id} answered "
                                f"{response.text[:200]!r}, not {{\"is_sleeping\": bool}}")
        return sleeping
