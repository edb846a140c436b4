"""SGLang's memory saver: ``POST /release_memory_occupation`` frees the weights and KV cache
from GPU memory, ``POST /resume_memory_occupation`` takes them back. The server must run
with ``--enable-memory-saver`` and may release only while no request runs, so the driver
checks the engine's metrics first (when it serves them) and refuses while it is busy.
"""

from __future__ import annotations

import httpx

from agent_plugin.errors import EngineRefused, SleepUnsupported
from agent_plugin.lifecycle.base import SleepOutcome, SleepTarget, engine_call
from agent_plugin.metrics import IDLE_SIGNALS, read_load

_HINT = " (start SGLang with --enable-memory-saver)"


class SglangSleep:
    mode = "sglang"
    releases_gpu_memory = True

    def __init__(self, client: httpx.AsyncClient, timeout_s: float) -> None:
        self._client, self._timeout = client, timeout_s

    async def sleep(self, target: SleepTarget) -> SleepOutcome:
        if target.address:
            try:
                load = await read_load(self._client, target.address, IDLE_SIGNALS["sglang"])
            except SleepUnsupported:
                pass  # no --enable-metrics: SGLang itself will refuse if it is busy
            else:
                if load.in_flight > 0:
                    raise EngineRefused(f"SGLang releases memory only when idle; task "
                                        f"{target.task_id} has {load.words()}")
        await engine_call(self._client, "POST", target, "/release_memory_occupation", json={},
                          timeout_s=self._timeout, missing_hint=_HINT)
        return SleepOutcome(self.mode, True, "asleep (SGLang memory saver): weights and KV "
                                             "cache released from GPU memory")

    async def wake(self, target: SleepTarget) -> SleepOutcome:
        await engine_call(self._client, "POST", target, "/resume_memory_occupation", json={},
                          timeout_s=self._timeout, missing_hint=_HINT)
        return SleepOutcome(self.mode, False, "awake: SGLang took its GPU memory back")
