"""The gateway's routes: /v1 (OpenAI), /metrics and /gateway/health, as one blueprint.

Handlers are thin: authorize, read the body (streamed routes, so that reading it is bounded
in time), parse, resolve the model, then hand over to ``proxy.forward``.
Checks run in the order OpenAI's API uses (key, body, model, permission), so clients see
the statuses they expect. Every failure leaves as an OpenAI-shaped error, including the
framework's own (unknown path, wrong method, body too large).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from itertools import count
from time import perf_counter
from typing import Any

from sanic import Blueprint, Request
from sanic import exceptions as sanic_exc
from sanic.response import HTTPResponse, json, raw

from gateway.errors import (
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotAllowed,
    ModelNotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
)
from gateway.openai.requests import parse_request
from gateway.openai.shapes import check_shape
from gateway.proxy import Call, forward
from gateway.runtime import GatewayRuntime
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ID_PREFIX = os.urandom(4).hex()
_ids = count(1)
_STARTED = int(time.time())


def build_blueprint() -> Blueprint:
    bp = Blueprint("heteroflow_gateway")

    @bp.post("/v1/chat/completions", name="chat_completions", stream=True)
    async def chat_completions(request: Request) -> HTTPResponse | None:
        return await _proxy(request, "/chat/completions", streamable=True)

    @bp.post("/v1/completions", name="completions", stream=True)
    async def completions(request: Request) -> HTTPResponse | None:
        return await _proxy(request, "/completions", streamable=True)

    @bp.post("/v1/embeddings", name="embeddings", stream=True)
    async def embeddings(request: Request) -> HTTPResponse | None:
        return await _proxy(request, "/embeddings", streamable=False)

    @bp.get("/v1/models", name="models")
    async def models(request: Request) -> HTTPResponse:
        rt = _runtime(request)
        try:
            grant = await rt.keys.authorize(request.headers.get("authorization"))
        except GatewayError as exc:
            return error_response(exc, _request_id(request))
        data = [_model_object(m) for m in rt.snapshot.models_for(grant)]
        return json({"object": "list", "data": data})

    @bp.get("/v1/models/<model_id:path>", name="model")
    async def model(request: Request, model_id: str) -> HTTPResponse:
        rt = _runtime(request)
        try:
            grant = await rt.keys.authorize(request.headers.get("authorization"))
            if model_id not in rt.snapshot.models_for(grant):
                raise ModelNotFound(f"the model {model_id!r} does not exist", param="model")
        except GatewayError as exc:
            return error_response(exc, _request_id(request))
        return json(_model_object(model_id))

    async def unknown(request: Request, rest: str) -> HTTPResponse:
        return error_response(ModelNotFound(f"no such endpoint: {request.method} /v1/{rest}",
                                            code="unknown_url"), _request_id(request))

    bp.add_route(unknown, "/v1/<rest:path>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                 name="unknown")

    @bp.get("/metrics", name="metrics")
    async def metrics(request: Request) -> HTTPResponse:
        body = await _runtime(request).render_metrics()
        return raw(body.encode(), content_type="text/plain; version=0.0.4; charset=utf-8")

    @bp.get("/gateway/health", name="health")
    async def health(request: Request) -> HTTPResponse:
        rt = _runtime(request)
        return json(rt.health(), status=200 if rt.loaded else 503)

    bp.exception(Exception)(on_exception)
    return bp


async def _proxy(request: Request, suffix: str, *, streamable: bool) -> HTTPResponse | None:
    started = perf_counter()
    rt = _runtime(request)
    request_id = _request_id(request)
    label = "_other"
    try:
        grant = await rt.keys.authorize(request.headers.get("authorization"))
        body = await _receive_body(request, rt.settings)
        if len(body) > rt.settings.max_body_bytes:
            raise PayloadTooLarge(f"the request body is larger than "
                                  f"{rt.settings.max_body_bytes} bytes")
        parsed = parse_request(body, streamable=streamable)
        model = parsed.model
        snapshot = rt.snapshot
        tiers = snapshot.tiers.get(model)
        if tiers is None:
            raise ModelNotFound(f"the model {model!r} does not exist or has no active route",
                                param="model")
        if not snapshot.allowed(grant, model):
            raise ModelNotAllowed(f"this API key may not use the model {model!r}",
                                  param="model")
        tiers = snapshot.tiers_for(grant, tiers)
        check_shape(suffix, parsed.body)
        label = model
        key_id = grant.key_id
        _admit(rt, key_id)
        rt.inflight += 1
        per_key = rt.inflight_by_key
        per_key[key_id] = per_key.get(key_id, 0) + 1
        try:
            call = Call(key_id=key_id, model=model, label=label, parsed=parsed.body, raw=body,
                        stream=parsed.stream, suffix=suffix, request_id=request_id,
                        started=started)
            return await forward(rt, request, call, tiers)
        finally:
            rt.inflight -= 1
            left = per_key[key_id] - 1
            if left:
                per_key[key_id] = left
            else:
                del per_key[key_id]
    except GatewayError as exc:
        _close_if_body_unread(request)
        _count_error(rt, label, exc, started)
        return error_response(exc, request_id)


async def _receive_body(request: Request, settings: GatewaySettings) -> bytes:
    """The body, read only after the key checked out, in bounded time and size: the
    framework's request timeout stops at the headers, and a client trickling its body must
    not hold a connection for the whole (long) response timeout. The size limit is the
    gateway's own, also when it shares an app (and its app-wide limit) with the bridge."""
    http: Any = request.stream
    if http is not None and hasattr(http, "request_max_size"):
        http.request_max_size = settings.max_body_bytes
    if (http is not None and getattr(http, "request_body", None) is True
            and len(http.recv_buffer) >= http.request_bytes_left):
        # Already all here (the usual case): no timer, whose setup costs three getpid
        # system calls in asyncio.timeout().
        await request.receive_body()  # type: ignore[no-untyped-call]
        return request.body
    try:
        async with asyncio.timeout(settings.request_timeout_s):
            await request.receive_body()  # type: ignore[no-untyped-call]
    except TimeoutError:
        raise RequestTimeout("the request body was not received in time") from None
    return request.body


def _close_if_body_unread(request: Request) -> None:
    """After an early "no" (bad key, slow body), answer and close: left alone, the
    framework would drain a body nobody wants, at whatever pace the client sends it."""
    http: Any = request.stream  # HTTP/1.1: sanic.http.Http (public attributes, untyped)
    if http is not None and getattr(http, "request_body", None):
        http.keep_alive = False
        http.request_body = None


def _admit(rt: GatewayRuntime, key_id: str) -> None:
    settings = rt.settings
    if rt.inflight >= settings.max_inflight:
        raise RateLimited(f"the gateway is at its limit of {settings.max_inflight} requests "
                          "in flight; retry shortly", retry_after=1)
    limit = settings.key_max_inflight
    if limit and rt.inflight_by_key.get(key_id, 0) >= limit:
        raise RateLimited(f"this API key already has {limit} requests in flight; retry "
                          "when one finishes", retry_after=1)


def error_response(exc: GatewayError, request_id: str | None) -> HTTPResponse:
    headers = exc.headers()
    if request_id:
        headers["x-request-id"] = request_id
    return raw(exc.body_bytes(), status=exc.status, headers=headers,
               content_type="application/json")


async def on_exception(request: Request, exc: Exception) -> HTTPResponse:
    """Framework errors on gateway routes, and bugs, in OpenAI's shape."""
    return error_response(translate(exc, request), _request_id(request))


def translate(exc: Exception, request: Request) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, sanic_exc.NotFound):
        return ModelNotFound(f"no such endpoint: {request.method} {request.path}",
                             code="unknown_url")
    if isinstance(exc, sanic_exc.MethodNotAllowed):
        return MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
    if isinstance(exc, sanic_exc.PayloadTooLarge):
        if is_header_overflow(exc):
            return HeadersTooLarge("the request headers are too large")
        return PayloadTooLarge("the request body is too large")
    if isinstance(exc, sanic_exc.RequestTimeout):
        return RequestTimeout("the request was not received in time")
    if isinstance(exc, sanic_exc.SanicException) and 400 <= exc.status_code < 500:
        return InvalidRequest(str(exc) or "bad request")
    log.error("request failed", exc_info=exc, extra={"path": request.path})
    return GatewayError("internal error in the gateway; its log has the details")


def is_header_overflow(exc: Exception) -> bool:
    """Sanic says "too large" for headers and bodies alike (413); only its message tells."""
    return "header" in str(exc).lower()


def _count_error(rt: GatewayRuntime, label: str, exc: GatewayError, started: float) -> None:
    rt.metrics.requests.inc((label, str(exc.status)))
    rt.metrics.latency.observe((label,), perf_counter() - started)


def _runtime(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.ctx.gateway
    return runtime


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    if given and _REQUEST_ID.match(given):
        return str(given)
    return f"gw-{_ID_PREFIX}-{next(_ids)}"


def _model_object(model_id: str) -> dict[str, object]:
    return {"id": model_id, "object": "model", "created": _STARTED, "owned_by": "heteroflow"}
