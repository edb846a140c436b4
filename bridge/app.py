"""create_app(): the bridge's Sanic application, its blueprints, listeners and middleware."""

from __future__ import annotations

import asyncio
import logging
import re
from importlib.metadata import PackageNotFoundError, version
from types import SimpleNamespace

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse, json

from bridge.agents.client import AgentClient
from bridge.api import (
    api_keys,
    engines,
    model_routes,
    nodes,
    openapi,
    preview,
    task_groups,
    usage,
    users,
)
from bridge.api.errors import install_error_handlers
from bridge.api.etag import install_etags
from bridge.api.http import new_request_id
from bridge.crypto import SecretBox, load_or_create_key
from bridge.errors import BridgeError
from bridge.nomad.client import NomadClient
from bridge.reconciler.loop import Reconciler
from bridge.reconciler.port import NomadPlacement
from bridge.services.local_placement import LocalPlacement
from bridge.services.nodes import mark_offline_nodes
from bridge.services.placement import Placer
from bridge.services.users import TokenCache
from bridge.settings import BridgeSettings
from bridge.storage.db import Database
from bridge.webui import install_web_ui

log = logging.getLogger("bridge")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def package_version() -> str:
    try:
        return version("heteroflow")
    except PackageNotFoundError:
        return "0.0.0+local"


async def _watch_offline_nodes(db: Database, after_seconds: int) -> None:
    """Mark nodes offline once they miss heartbeats; checked several times per window."""
    while True:
        await asyncio.sleep(max(1.0, after_seconds / 6))
        try:
            await mark_offline_nodes(db, after_seconds)
        except BridgeError as exc:
            log.warning("offline check failed", extra={"error": str(exc)})


def create_app(settings: BridgeSettings, database_url: str, *, name: str = "heteroflow") -> Sanic:  # type: ignore[type-arg]
    """The bridge app; it opens its own pool on ``database_url`` when the server starts."""
    app: Sanic = Sanic(name, configure_logging=False, ctx=SimpleNamespace())  # type: ignore[type-arg]
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.KEEP_ALIVE_TIMEOUT = 30
    app.config.MOTD = False
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.ctx.settings = settings
    app.ctx.version = package_version()
    app.ctx.database_url = database_url
    app.ctx.tokens = TokenCache()
    app.ctx.secrets = SecretBox(load_or_create_key(settings.secret_key, settings.secret_key_file))
    for module in (task_groups, model_routes, api_keys, users, nodes, usage, openapi, engines,
                   preview):
        app.blueprint(module.bp)
    install_error_handlers(app)
    install_web_ui(app)
    install_etags(app)

    @app.before_server_start
    async def open_db(app: Sanic) -> None:  # type: ignore[type-arg]
        app.ctx.db = Database(database_url, min_size=settings.db_pool_min,
                              max_size=settings.db_pool_max)
        await app.ctx.db.open()
        app.ctx.agents = AgentClient()
        nomad = NomadClient(settings) if settings.nomad_addr else None
        app.ctx.nomad = nomad
        app.ctx.placer = Placer(app.ctx.db, nomad, settings)
        app.ctx.placement = None
        app.ctx.reconciler = None
        app.ctx.local = None
        if nomad is not None:
            app.ctx.reconciler = Reconciler(app.ctx.db, nomad, app.ctx.placer,
                                            resync_seconds=settings.reconcile_resync_seconds)
            app.ctx.placement = NomadPlacement(app.ctx.placer, app.ctx.reconciler)
        elif settings.placement == "auto":
            # No Nomad: the bridge fits tasks on the GPUs its agents report and the agents
            # run the engines (on one machine: the agent `heteroflow up` starts beside it).
            app.ctx.local = LocalPlacement(app.ctx.db, app.ctx.agents, app.ctx.secrets,
                                           settings.local_model_roots)
            app.ctx.placement = app.ctx.local

    @app.after_server_start
    async def start_reconciler(app: Sanic) -> None:  # type: ignore[type-arg]
        app.ctx.offline_watch = asyncio.create_task(
            _watch_offline_nodes(app.ctx.db, settings.node_offline_seconds))
        if app.ctx.reconciler is not None:
            app.ctx.reconciler.start()
            log.info("placement on Nomad", extra={"nomad": settings.nomad_addr})
        if app.ctx.local is not None:
            app.ctx.local.start()

    @app.before_server_stop
    async def stop_reconciler(app: Sanic) -> None:  # type: ignore[type-arg]
        app.ctx.offline_watch.cancel()
        if app.ctx.reconciler is not None:
            await app.ctx.reconciler.stop()
        if app.ctx.local is not None:
            await app.ctx.local.stop()

    @app.after_server_stop
    async def close_db(app: Sanic) -> None:  # type: ignore[type-arg]
        if app.ctx.nomad is not None:
            await app.ctx.nomad.close()
        await app.ctx.agents.close()
        await app.ctx.db.close()

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
        return json({"status": "ok", "version": app.ctx.version})

    return app
