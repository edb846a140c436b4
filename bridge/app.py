"""create_app(): the bridge's Sanic application, its blueprints, listeners and middleware."""

from __future__ import annotations

import logging
import re
from importlib.metadata import PackageNotFoundError, version
from types import SimpleNamespace

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse, json

from bridge.api import (
    api_keys,
    model_routes,
    nodes,
    openapi,
    policies,
    task_groups,
    usage,
    users,
)
from bridge.api.errors import install_error_handlers
from bridge.api.http import new_request_id
from bridge.runtime import BridgeRuntime
from bridge.settings import BridgeSettings

log = logging.getLogger("bridge")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def package_version() -> str:
    try:
        return version("heteroflow")
    except PackageNotFoundError:
        return "0.0.0+local"


def create_app(settings: BridgeSettings, database_url: str, *, name: str = "heteroflow") -> Sanic:  # type: ignore[type-arg]
    """The bridge app; it opens its own pool on ``database_url`` when the server starts."""
    app: Sanic = Sanic(name, configure_logging=False, ctx=SimpleNamespace())  # type: ignore[type-arg]
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.KEEP_ALIVE_TIMEOUT = 30
    app.config.MOTD = False
    app.config.FALLBACK_ERROR_FORMAT = "json"
    runtime = BridgeRuntime(settings, database_url, package_version())
    app.ctx.bridge = runtime
    for module in (task_groups, policies, model_routes, api_keys, users, nodes, usage,
                   openapi):
        app.blueprint(module.bp)
    install_error_handlers(app)

    @app.before_server_start
    async def open_runtime(app: Sanic) -> None:  # type: ignore[type-arg]
        await runtime.open()

    @app.after_server_start
    async def start_loops(app: Sanic) -> None:  # type: ignore[type-arg]
        runtime.start_loops()

    @app.before_server_stop
    async def stop_loops(app: Sanic) -> None:  # type: ignore[type-arg]
        await runtime.stop_loops()

    @app.after_server_stop
    async def close_runtime(app: Sanic) -> None:  # type: ignore[type-arg]
        await runtime.close()

    @app.on_request
    async def tag_request(request: Request) -> None:
        given = request.headers.get("x-request-id", "")
        request.ctx.request_id = given if _REQUEST_ID.match(given) else new_request_id()

    async def tag_response(request: Request, response: BaseHTTPResponse) -> None:
        request_id = getattr(request.ctx, "request_id", None)
        if request_id:
            response.headers["x-request-id"] = request_id

    app.register_middleware(tag_response, "response")

    @app.get("/healthz", name="healthz")
    async def healthz(_: Request) -> HTTPResponse:
        return json({"status": "ok", "version": runtime.version})

    return app
