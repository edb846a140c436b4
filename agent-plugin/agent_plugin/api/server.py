"""The agent's HTTP API on aiohttp. Every call needs ``Authorization: Bearer <agent secret>``
(compared in constant time); errors are ``{"error": {"code", "message"}}`` with the status
of the error class (``errors.py``). Handlers parse, make one call and serialize.

    GET    /v1/status                       node id and every task's status
    POST   /v1/tasks                        start an engine (202)
    DELETE /v1/tasks/{task_id}              stop it: SIGTERM, then SIGKILL
    POST   /v1/tasks/{task_id}/sleep|wake   for engines this agent runs
    POST   /v1/sleep|wake                   for engines Nomad placed here (by address or
                                            container)
    GET|PUT /v1/gpu-layout                  which GPUs heteroflow-gpu offers as shares
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from agent_plugin.api.schemas import (
    RemoteSleepIn,
    StartTaskIn,
    remote_target,
    task_spec,
)
from agent_plugin.errors import AgentError, InvalidRequest, Unauthorized
from agent_plugin.gpu_layout import ConfigError, read_layout, write_layout
from agent_plugin.tasks import NodeTasks

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = 1024 * 1024


class AgentApi:
    """What the handlers need; one per agent."""

    def __init__(self, *, node_id: str, secret: str, tasks: NodeTasks, log_dir: Path,
                 idle_notes: Callable[[], Mapping[str, str]],
                 layout_path: Path | None = None) -> None:
        self.node_id = node_id
        self.layout_path = layout_path
        self._secret = secret.encode()
        self.tasks, self.log_dir = tasks, log_dir
        self.idle_notes = idle_notes

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._auth],
                              client_max_size=MAX_BODY_BYTES)
        app.add_routes([
            web.get("/v1/status", self.status),
            web.post("/v1/tasks", self.start_task),
            web.delete("/v1/tasks/{task_id}", self.stop_task),
            web.post("/v1/tasks/{task_id}/sleep", self.sleep_task),
            web.post("/v1/tasks/{task_id}/wake", self.wake_task),
            web.post("/v1/sleep", self.sleep_remote),
            web.post("/v1/wake", self.wake_remote),
            web.get("/v1/gpu-layout", self.gpu_layout),
            web.put("/v1/gpu-layout", self.set_gpu_layout),
        ])
        return app

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"node_id": self.node_id,
                                  "tasks": self.tasks.statuses_json(self.idle_notes())})

    async def gpu_layout(self, request: web.Request) -> web.Response:
        return web.json_response({"shares": read_layout(self._layout())})

    async def set_gpu_layout(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            shares = write_layout(self._layout(), body.get("shares") if isinstance(
                body, dict) else None)
        except (ValueError, ConfigError) as exc:
            raise InvalidRequest(f"the GPU layout is not valid: {exc}") from exc
        log.info("gpu share layout written", extra={"shares": shares})
        return web.json_response({"shares": shares})

    def _layout(self) -> Path:
        if self.layout_path is None:
            raise InvalidRequest("this agent keeps no GPU layout (no heteroflow-gpu here)")
        return self.layout_path

    async def start_task(self, request: web.Request) -> web.Response:
        spec, meta = task_spec(await _body(request, StartTaskIn), self.log_dir)
        status = await self.tasks.start(spec, meta)
        return web.json_response(status.to_json(), status=202)

    async def stop_task(self, request: web.Request) -> web.Response:
        status = await self.tasks.stop(request.match_info["task_id"])
        return web.json_response(status.to_json())

    async def sleep_task(self, request: web.Request) -> web.Response:
        answer = await self.tasks.sleep(request.match_info["task_id"], why="sleep requested")
        return web.json_response(answer.to_json())

    async def wake_task(self, request: web.Request) -> web.Response:
        answer = await self.tasks.wake(request.match_info["task_id"])
        return web.json_response(answer.to_json())

    async def sleep_remote(self, request: web.Request) -> web.Response:
        body = await _body(request, RemoteSleepIn)
        answer = await self.tasks.sleep_remote(remote_target(body), body.sleep_api)
        return web.json_response(answer.to_json())

    async def wake_remote(self, request: web.Request) -> web.Response:
        body = await _body(request, RemoteSleepIn)
        answer = await self.tasks.wake_remote(remote_target(body), body.sleep_api)
        return web.json_response(answer.to_json())

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 self._secret):
            raise Unauthorized("this agent's API needs Authorization: Bearer <agent secret>")
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except AgentError as exc:
            if exc.status >= 500:
                log.warning("agent api call failed", extra={
                    "path": request.path, "code": exc.code, "reason": exc.message})
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return _error(exc.status, exc.code, exc.message, headers)
        except web.HTTPException as exc:  # aiohttp's own: unknown path, wrong method, size
            return _error(exc.status, _HTTP_CODES.get(exc.status, "http_error"),
                          exc.reason or "request refused")
        except Exception:
            log.exception("agent api call broke", extra={"path": request.path})
            return _error(500, "agent_error", "internal error; the agent's log has details")


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


async def _body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                             for e in exc.errors(include_url=False)[:10])
        raise InvalidRequest(f"invalid body: {problems}") from None


def _error(status: int, code: str, message: str,
           headers: dict[str, str] | None = None) -> web.Response:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json",
                        headers=headers)
