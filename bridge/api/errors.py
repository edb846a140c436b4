"""Every failure leaves the bridge in one JSON shape, with the right status.

Sanic's own exceptions (unknown path, wrong method, body too large) are mapped onto the
bridge's error tree so clients see one shape; anything unexpected is logged with its
request id and answered 500 without internals.
"""

from __future__ import annotations

import logging
import re
from functools import cache

from sanic import Request, Sanic
from sanic import exceptions as sanic_exc
from sanic.response import HTTPResponse, empty, json

from bridge.api.http import OPERATIONS, PREFIX
from bridge.errors import (
    BadRequest,
    BridgeError,
    Conflict,
    DuplicateKey,
    MethodNotAllowed,
    MissingReference,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    ValidationFailed,
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
                                details={"allowed": allowed_methods(request.path)})
    if isinstance(exc, DuplicateKey):  # a service that did not expect it: still a conflict
        return Conflict("that already exists", details={"constraint": exc.constraint})
    if isinstance(exc, MissingReference):
        return ValidationFailed("a referenced object does not exist",
                                details={"constraint": exc.constraint})
    if isinstance(exc, sanic_exc.PayloadTooLarge):
        return PayloadTooLarge("the request body is too large",
                               details={"limit_bytes": request.app.config.REQUEST_MAX_SIZE})
    if isinstance(exc, sanic_exc.Unauthorized):
        return Unauthorized(str(exc))
    if isinstance(exc, sanic_exc.SanicException) and 400 <= exc.status_code < 500:
        return BadRequest(str(exc) or "bad request")
    return BridgeError("internal error; the server log has the details under this request id")


@cache
def _patterns() -> list[tuple[re.Pattern[str], str]]:
    return [(re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(PREFIX + op.path))
                        + "/?$"), op.method) for op in OPERATIONS]


def allowed_methods(path: str) -> list[str]:
    """The methods served on ``path``, from the operations declared (Sanic's own list is
    empty for paths with parameters)."""
    found = {method for pattern, method in _patterns() if pattern.match(path)}
    return sorted(found | {"OPTIONS"}) if found else []


async def _handle(request: Request, exc: Exception) -> HTTPResponse:
    error = _translate(exc, request)
    allow = allowed_methods(request.path) if isinstance(error, MethodNotAllowed) else []
    if allow and request.method == "OPTIONS":
        # a preflight or a capability probe: what is served here, and no CORS grant (the
        # API is not offered to other origins' pages)
        return empty(status=204, headers={"Allow": ", ".join(allow)})
    request_id = getattr(request.ctx, "request_id", None)
    if error.status >= 500:
        log.error("request failed", exc_info=exc,
                  extra={"request_id": request_id, "path": request.path})
    body = error.to_body()
    if request_id:
        body["error"]["request_id"] = request_id
    headers = {"Allow": ", ".join(allow)} if allow else None
    return json(body, status=error.status, headers=headers)
