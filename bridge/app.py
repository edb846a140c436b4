"""create_app(): the bridge's Sanic application, its blueprints, listeners and middleware."""

from __future__ import annotations

import logging
import re
from importlib.metadata import PackageNotFoundError, version
from types import SimpleNamespace
from typing import Any

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse, json

from bridge.api import (
    api_keys,
    engines,
    model_routes,
    nodes,
    openapi,
    policies,
    preview,
    task_groups,
    updates,
    usage,
    users,
)
from bridge.api.errors import install_error_handlers
from bridge.api.etag import install_etags
from bridge.api.http import new_request_id
from bridge.api.openapi import build_document
from bridge.errors import StorageUnavailable
from bridge.runtime import BridgeRuntime
from bridge.settings import BridgeSettings
from bridge.webui import install_web_ui

log = logging.getLogger("bridge")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def package_version() -> str:
    try:
        return version("heteroflow")
    except PackageNotFoundError:
        return "0.0.0+local"


def api_document() -> dict[str, Any]:
    """The OpenAPI document this app serves, without starting it (the UI's tests read it)."""
    return build_document(version=package_version())


def create_app(settings: BridgeSettings, database_url: str, *, name: str = "heteroflow") -> Sanic:  # type: ignore[type-arg]
    """The bridge app; it opens its own pool on ``database_url`` when the server starts."""
    app: Sanic = Sanic(name, configure_logging=False, ctx=SimpleNamespace())  # type: ignore[type-arg]
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.KEEP_ALIVE_TIMEOUT = 30
    app.config.MOTD = False
    app.config.FALLBACK_ERROR_FORMAT = "json"
    runtime = BridgeRuntime(settings, database_url, package_version())
    app.ctx.bridge = runtime
    for module in (task_groups, updates, policies, model_routes, api_keys, users, nodes, usage,
                   openapi, engines, preview):
        app.blueprint(module.bp)
    install_error_handlers(app)
    install_web_ui(app)
    install_etags(app)

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
        """Liveness: the process answers (200 even when the database is down, so a
        supervisor does not restart it for an outage), and says how its database is."""
        database = "ok" if await runtime.db.ping() else "down"
        return json({"status": "ok", "version": runtime.version, "database": database})

    @app.get("/readyz", name="readyz")
    async def readyz(_: Request) -> HTTPResponse:
        """Readiness: 503 while the database does not answer, so a balancer sends the
        traffic elsewhere."""
        if await runtime.db.ping():
            return json({"status": "ready", "database": "ok"})
        return json(StorageUnavailable("the database does not answer; not ready",
                                       details={"database": "down"}).to_body(), status=503)

    return app
