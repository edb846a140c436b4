"""The bridge as the agent sees it: two calls, both with the node token. Failures become
``ReportError`` with a reason and whether trying again can help: an outage, a 5xx, a
token being fixed (401/403) or a rate limit may pass; any other 4xx means this very report
will never be taken.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

from agent_plugin._json import ShapeError
from agent_plugin.errors import ReportError
from agent_plugin.report.shapes import HeartbeatAnswer, HeartbeatBody, TaskStateReport

log = logging.getLogger(__name__)
_RETRYABLE_4XX = frozenset({401, 403, 408, 425, 429})
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class BridgeClient:
    def __init__(self, base_url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # trust_env off: a proxy from the environment must not see the node token
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/") + "/api/v1",
                                       headers=headers, timeout=_TIMEOUT, trust_env=False)
        self.base_url = base_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def heartbeat(self, body: HeartbeatBody) -> HeartbeatAnswer:
        data = await self._post("/agent/heartbeat", body.to_json())
        try:
            return HeartbeatAnswer.from_json(data)
        except ShapeError as exc:
            raise ReportError(f"the bridge answered the heartbeat with {exc}") from exc

    async def task_state(self, task_id: str, report: TaskStateReport) -> None:
        await self._post(f"/agent/tasks/{quote(task_id, safe='')}/state", report.to_json())

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise ReportError(f"the bridge at {self.base_url} cannot be reached: "
                              f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 400:
            raise ReportError(
                f"the bridge answered {response.status_code} to POST {path}: "
                f"{_error_words(response)}",
                retryable=response.status_code >= 500 or response.status_code in _RETRYABLE_4XX,
                http_status=response.status_code)
        try:
            data = response.json()
        except ValueError:
            data = None
        return data if isinstance(data, dict) else {}


def _error_words(response: httpx.Response) -> str:
    """The bridge's ``{"error": {"code", "message"}}``, else the start of the body."""
    try:
        error = response.json().get("error") or {}
        return f"{error.get('code', '?')}: {error.get('message', '')}"
    except (ValueError, AttributeError):
        return response.text[:300] or response.reason_phrase
