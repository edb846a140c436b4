"""Every failure leaves the bridge in one JSON shape, with the right status.

Sanic's own exceptions (unknown path, wrong method, body too large) are mapped onto the
bridge's error tree so clients see one shape; anything unexpected is logged with its
request id and answered 500 without internals.
"""

from __future__ import annotations

import logging

from sanic import Request, Sanic
from sanic import exceptions as sanic_exc
from sanic.response import HTTPResponse, json

from bridge.errors import (
    BadRequest,
    BridgeError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)

log = logging.getLogger("bridge.api")


def install_error_handlers(app: Sanic) -> None:  # type: ignore[type-arg]
    app.error_handler.add(Exception, _handle)


def _translate(exc: Exception, request: Request) -> BridgeError:
    if isinstance(exc, BridgeError):
        return exc
    if isinstance(exc, sanic_exc.NotFound):
        return NotFound(f"no such path: {request.method} {request.path}")
    if isinstance(exc, sanic_exc.MethodNotAllowed):
        return MethodNotAllowed(f"{request.method} is not allowed on {request.path}",
                                details={"allowed": sorted(getattr(exc, "allowed_methods", []))})
    if isinstance(exc, sanic_exc.PayloadTooLarge) and "header" in str(exc).lower():
        return BadRequest("the request headers are too large")  # answered 431, below
    if isinstance(exc, sanic_exc.PayloadTooLarge):
        return PayloadTooLarge("the request body is too large",
                               details={"limit_bytes": request.app.config.REQUEST_MAX_SIZE})
    if isinstance(exc, sanic_exc.Unauthorized):
        return Unauthorized(str(exc))
    if isinstance(exc, sanic_exc.SanicException) and 400 <= exc.status_code < 500:
        return BadRequest(str(exc) or "bad request")
    return BridgeError("internal error; the server log has the details under this request id")


async def _handle(request: Request, exc: Exception) -> HTTPResponse:
    error = _translate(exc, request)
    request_id = getattr(request.ctx, "request_id", None)
    if error.status >= 500:
        log.error("request failed", exc_info=exc,
                  extra={"request_id": request_id, "path": request.path})
    body = error.to_body()
    if request_id:
        body["error"]["request_id"] = request_id
    status = error.status
    if isinstance(exc, sanic_exc.SanicException) and 400 <= exc.status_code < 500:
        status = exc.status_code  # 408 (too slow) and the like: the framework's own status
    if isinstance(exc, sanic_exc.PayloadTooLarge) and "header" in str(exc).lower():
        status = 431  # Sanic says 413 for headers too; RFC 6585 says 431
    return json(body, status=status)
