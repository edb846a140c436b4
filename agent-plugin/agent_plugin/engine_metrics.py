"""Engine load for the bridge's autoscaler: each running engine's own ``/metrics``, read
every ``poll_s`` and sent with the next heartbeat, under common names:

| engine   | waiting                    | running                      | kv_cache_usage        |
|----------|----------------------------|------------------------------|-----------------------|
| vllm     | vllm:num_requests_waiting  | vllm:num_requests_running    | :kv_cache_usage_perc  |
| sglang   | sglang:num_queue_reqs      | sglang:num_running_reqs      | :token_usage          |
| llamacpp | llamacpp:requests_deferred | llamacpp:requests_processing | :kv_cache_usage_ratio |

(SGLang with ``--enable-metrics``, llama.cpp's ``llama-server`` with ``--metrics``; older
vLLM names its cache gauge ``vllm:gpu_cache_usage_perc``.) An engine without them
(llama-cpp-python's server has no /metrics) is reported as missing with the reason, so the
bridge never acts on a value nobody measured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from agent_plugin.errors import EngineUnreachable, SleepUnsupported
from agent_plugin.metrics import parse_samples

log = logging.getLogger(__name__)

# engine -> common name -> the engine's metric names, first found wins
SCALE_SIGNALS: dict[str, dict[str, tuple[str, ...]]] = {
    "vllm": {"waiting": ("vllm:num_requests_waiting",),
             "running": ("vllm:num_requests_running",),
             "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")},
    "sglang": {"waiting": ("sglang:num_queue_reqs",), "running": ("sglang:num_running_reqs",),
               "kv_cache_usage": ("sglang:token_usage",)},
    "llamacpp": {"waiting": ("llamacpp:requests_deferred",),
                 "running": ("llamacpp:requests_processing",),
                 "kv_cache_usage": ("llamacpp:kv_cache_usage_ratio",)},
}
_TIMEOUT_S = 5.0
Engines = Callable[[], list[tuple[str, str | None, str]]]  # (task id, engine, address)


async def scrape(client: httpx.AsyncClient, address: str, engine: str | None
                 ) -> dict[str, float]:
    """The common-named values the engine exports; raises with the reason when none."""
    signals = SCALE_SIGNALS.get(engine or "")
    if signals is None:
        raise SleepUnsupported(f"no engine metrics are known for {engine or '(unnamed)'}")
    url = f"http://{address}/metrics"
    try:
        response = await client.get(url, timeout=_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise EngineUnreachable(f"{url} did not answer: {type(exc).__name__}") from exc
    if response.status_code == 404:
        raise SleepUnsupported(f"the engine serves no {url} (started without metrics?)")
    if response.status_code != 200:
        raise EngineUnreachable(f"{url} answered {response.status_code}")
    sums = parse_samples(response.text, {n for names in signals.values() for n in names})
    found = {common: next(sums[n] for n in names if n in sums)
             for common, names in signals.items() if any(n in sums for n in names)}
    if not found:
        raise SleepUnsupported(f"{url} exports none of the {engine} load metrics")
    return found


class EngineMetricsWatcher:
    """Keeps the latest reading of every running engine, for the heartbeat."""

    def __init__(self, engines: Engines, client: httpx.AsyncClient, *,
                 poll_s: float = 10.0) -> None:
        self._engines, self._client, self._poll_s = engines, client, poll_s
        self.latest: dict[str, dict[str, Any]] = {}

    async def run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # one odd engine must not end the readings of all
                log.exception("engine metrics poll failed")
            await asyncio.sleep(self._poll_s)

    async def tick(self) -> None:
        engines = self._engines()
        readings = await asyncio.gather(*(self._read(e, a) for _, e, a in engines))
        self.latest = {task_id: reading
                       for (task_id, _, _), reading in zip(engines, readings, strict=True)}

    async def _read(self, engine: str | None, address: str) -> dict[str, Any]:
        at = time.time()
        try:
            return {"metrics": await scrape(self._client, address, engine), "at": at}
        except (SleepUnsupported, EngineUnreachable) as exc:
            return {"missing": exc.message, "at": at}
