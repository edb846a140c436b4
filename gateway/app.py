"""The gateway as a Sanic app (``create_app``), or attached to another app (``attach``).

``heteroflow gateway`` runs ``create_app`` standalone; ``heteroflow up`` calls ``attach`` on
the bridge's app so both share port 3333. Attaching registers one blueprint (``/v1/*``,
``/metrics``, ``/gateway/health``; route names under ``heteroflow_gateway``) and two
listeners that build and close the per-worker ``GatewayRuntime`` in ``app.ctx.gateway``.
It raises the app's response timeout to the gateway's upstream timeout (LLM answers take
minutes) and leaves every other app-wide setting to the host app.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

from gateway.openai.handlers import build_blueprint, on_exception
from gateway.runtime import GatewayRuntime
from gateway.settings import GatewaySettings


def create_app(settings: GatewaySettings, database_url: str, *,
               name: str = "heteroflow_gateway") -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic(name, configure_logging=False, ctx=SimpleNamespace())
    config = app.config
    config.REQUEST_MAX_SIZE = settings.max_body_bytes
    config.REQUEST_TIMEOUT = settings.request_timeout_s
    config.KEEP_ALIVE_TIMEOUT = settings.keep_alive_timeout_s
    config.MOTD = False
    config.FALLBACK_ERROR_FORMAT = "json"
    attach(app, settings, database_url)
    # Standalone, the framework's own errors (unknown paths too) take the OpenAI shape.
    app.error_handler.add(Exception, on_exception)

    @app.get("/healthz", name="healthz")
    async def healthz(request: Request) -> HTTPResponse:
        runtime: GatewayRuntime = request.app.ctx.gateway
        return json(runtime.health(), status=200 if runtime.loaded else 503)

    return app


def attach(app: Sanic[Any, Any], settings: GatewaySettings, database_url: str) -> None:
    app.blueprint(build_blueprint())
    # Long generations must not be cut by the framework's default 60 s response timeout.
    app.config.RESPONSE_TIMEOUT = max(float(app.config.RESPONSE_TIMEOUT),
                                      settings.upstream_timeout_s + 30)
    # A client's time to send its request is the stricter of the two apps' bounds (run the
    # app with BoundedHttpProtocol so that it bounds the whole request, not each byte).
    app.config.REQUEST_TIMEOUT = min(float(app.config.REQUEST_TIMEOUT),
                                     settings.request_timeout_s)

    async def start_gateway(app: Sanic[Any, Any]) -> None:
        runtime = GatewayRuntime(settings, database_url)
        await runtime.start()
        app.ctx.gateway = runtime

    async def stop_gateway(app: Sanic[Any, Any]) -> None:
        runtime: GatewayRuntime | None = getattr(app.ctx, "gateway", None)
        if runtime is not None:
            await runtime.stop()

    app.register_listener(start_gateway, "before_server_start")
    app.register_listener(stop_gateway, "after_server_stop")
