"""Is the engine serving yet? Readiness is an HTTP answer below 500 on one of the task's
paths (llama-server answers 503 while loading; llama-cpp-python has no /health and answers
404 once up). And before an engine starts: is its port already taken? An engine that
cannot bind would otherwise look ready through whoever holds the port.
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx

_PROBE_TIMEOUT_S = 2.0
_FIRST_DELAY_S = 0.1
_MAX_DELAY_S = 1.0


async def wait_ready(client: httpx.AsyncClient, host: str, port: int,
                     paths: tuple[str, ...]) -> None:
    """Return once the engine answers; runs until cancelled otherwise."""
    delay = _FIRST_DELAY_S
    while True:
        for path in paths:
            if await _answers(client, f"http://{host}:{port}{path}"):
                return
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, _MAX_DELAY_S)


async def _answers(client: httpx.AsyncClient, url: str) -> bool:
    try:
        response = await client.get(url, timeout=_PROBE_TIMEOUT_S)
    except httpx.HTTPError:
        return False
    return response.status_code < 500


async def port_in_use(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
