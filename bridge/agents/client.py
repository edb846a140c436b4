"""AgentClient: the bridge calling a node agent's API, with the secret the agent gave it.

Failures are translated into bridge errors here: an agent that cannot be reached is
``AgentUnavailable`` (503), an agent that refuses is ``AgentRefused`` (502) with its words.
"""

from __future__ import annotations

from typing import Any

import httpx

from bridge.errors import AgentRefused, AgentUnavailable


class AgentClient:
    def __init__(self, timeout: float = 60.0) -> None:
        # Waking a large model can take a while; connecting must not.
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=3.0))

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, base_url: str, secret: str, method: str, path: str,
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
