"""The sleep extension point: what a driver is asked to put to sleep, what it answers, and
the one HTTP helper the engine drivers share.

A driver says truthfully what its sleep does: vLLM's and SGLang's release GPU memory (the
GPUs can take other work), a pause only stops computing (the memory stays taken).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from agent_plugin.errors import EngineRefused, EngineUnreachable, SleepUnsupported


@dataclass(frozen=True, slots=True)
class SleepTarget:
    task_id: str
    address: str | None  # host:port of the engine's HTTP server
    container: str | None = None  # the Docker container of an engine Nomad placed
    local: bool = False  # run by this agent's executor


@dataclass(frozen=True, slots=True)
class SleepOutcome:
    mode: str  # "vllm" | "sglang" | "paused"
    gpu_memory_released: bool
    message: str
    changed: bool = True  # False: it already was in the state asked for


class SleepDriver(Protocol):
    mode: str
    releases_gpu_memory: bool

    async def sleep(self, target: SleepTarget) -> SleepOutcome: ...

    async def wake(self, target: SleepTarget) -> SleepOutcome: ...


async def engine_call(client: httpx.AsyncClient, method: str, target: SleepTarget, path: str,
                      *, timeout_s: float, json: Any = None,
                      missing_hint: str = "") -> httpx.Response:
    """One call to the engine's own API. 404 means the engine was started without the API
    (``missing_hint`` says how to start it); 5xx and silence mean it is not serving."""
    if not target.address:
        raise SleepUnsupported(f"task {target.task_id} has no address to call {path} on")
    url = f"http://{target.address}{path}"
    try:
        response = await client.request(method, url, json=json, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise EngineUnreachable(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
    if response.status_code == 404:
        raise SleepUnsupported(f"{url} does not exist on this engine{missing_hint}")
    if response.status_code >= 500:
        raise EngineUnreachable(f"{method} {url} answered {response.status_code}: "
                                f"{response.text[:300]}")
    if response.status_code >= 400:
        raise EngineRefused(f"{method} {url} answered {response.status_code}: "
                            f"{response.text[:300]}")
    return response
