"""AgentClient: the bridge calling a node agent's API, with the secret the agent gave it.
One method per call, taking and returning the shapes of ``bridge/agents/shapes.py``.

Failures are translated into bridge errors here: an agent that cannot be reached is
``AgentUnavailable`` (503), an agent that refuses is ``AgentRefused`` (502) with its words.
"""

from __future__ import annotations

from typing import Any

import httpx

from bridge.agents.shapes import AgentStatus, RemoteEngine, SleepAnswer, StartTask
from bridge.errors import AgentRefused, AgentUnavailable

# An engine the agent runs itself is named by its task id; one Nomad placed, by where it is.
SleepTarget = str | RemoteEngine


class AgentClient:
    def __init__(self, timeout: float = 60.0) -> None:
        # Waking a large model can take a while; connecting must not.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=3.0))

    async def close(self) -> None:
        await self._http.aclose()

    async def status(self, base_url: str, secret: str) -> AgentStatus:
        return AgentStatus.from_json(await self._call(base_url, secret, "GET", "/v1/status"))

    async def start_task(self, base_url: str, secret: str, start: StartTask) -> None:
        await self._call(base_url, secret, "POST", "/v1/tasks", start.to_json())

    async def stop_task(self, base_url: str, secret: str, task_id: str) -> None:
        await self._call(base_url, secret, "DELETE", f"/v1/tasks/{task_id}")

    async def gpu_layout(self, base_url: str, secret: str) -> dict[str, int]:
        """{device ID: K}: the GPUs the node's heteroflow-gpu offers as K shares."""
        answer = await self._call(base_url, secret, "GET", "/v1/gpu-layout")
        return {str(k): int(v) for k, v in (answer.get("shares") or {}).items()}

    async def set_gpu_layout(self, base_url: str, secret: str,
                             shares: dict[str, int]) -> dict[str, int]:
        answer = await self._call(base_url, secret, "PUT", "/v1/gpu-layout", {"shares": shares})
        return {str(k): int(v) for k, v in (answer.get("shares") or {}).items()}

    async def sleep(self, base_url: str, secret: str, target: SleepTarget) -> SleepAnswer:
        return await self._sleep_or_wake(base_url, secret, target, "sleep")

    async def wake(self, base_url: str, secret: str, target: SleepTarget) -> SleepAnswer:
        return await self._sleep_or_wake(base_url, secret, target, "wake")

    async def _sleep_or_wake(self, base_url: str, secret: str, target: SleepTarget,
                             verb: str) -> SleepAnswer:
        if isinstance(target, str):
            answer = await self._call(base_url, secret, "POST", f"/v1/tasks/{target}/{verb}")
        else:
            answer = await self._call(base_url, secret, "POST", f"/v1/{verb}", target.to_json())
        return SleepAnswer.from_json(answer)

    async def _call(self, base_url: str, secret: str, method: str, path: str,
                    body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = base_url.rstrip("/") + path
        try:
            resp = await self._http.request(method, url, json=body,
                                            headers={"Authorization": f"Bearer {secret}"})
        except httpx.TransportError as exc:
            raise AgentUnavailable(f"the node agent at {base_url} cannot be reached: {exc}",
                                   details={"agent_url": base_url}) from exc
        data: dict[str, Any] = {}
        if resp.content:
            try:
                data = resp.json()
            except ValueError:
                data = {"error": {"message": resp.text[:500]}}
        if resp.status_code >= 400:
            err = data.get("error") or {}
            raise AgentRefused(
                f"the node agent refused: {err.get('message') or resp.reason_phrase}",
                details={"agent_status": resp.status_code, "agent_code": err.get("code")})
        return data
