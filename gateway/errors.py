"""Every "no" the gateway says, in OpenAI's error shape, with the status OpenAI clients expect.

    GatewayError (500 server_error)
    ├── InvalidRequest (400)         malformed JSON, missing or mistyped ``model``
    ├── Unauthorized (401)           missing, unknown or revoked API key
    ├── ModelNotAllowed (403)        the key's endpoint does not serve that model
    ├── ModelNotFound (404)          no active route has that model name; unknown path
    ├── MethodNotAllowed (405)
    ├── RequestTimeout (408)         the client took too long to send its request
    ├── PayloadTooLarge (413)
    ├── HeadersTooLarge (431)        the request's headers pass the framework's bound
    ├── RateLimited (429)            an in-flight limit of the gateway or of the key bites
    ├── UpstreamFailed (502)         every backend tried failed before answering
    ├── NoHealthyBackend (503)       nothing to send to, or the wake bound was hit; Retry-After
    ├── KeyStoreUnavailable (503)    a key not cached yet, and the database does not answer
    └── UpstreamTimeout (504)        the backends tried did not answer in time

Bodies are ``{"error": {"message", "type", "param", "code"}}``; ``code`` is stable and
machine-readable, ``message`` is for people and never contains a key or an upstream secret.
"""

from __future__ import annotations

import json
from typing import Any


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.retry_after = retry_after

    def to_body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def body_bytes(self) -> bytes:
        return json.dumps(self.to_body(), separators=(",", ":")).encode()

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, round(self.retry_after)))}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class ModelNotAllowed(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTimeout(GatewayError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class HeadersTooLarge(GatewayError):
    status = 431
    type = "invalid_request_error"
    code = "request_headers_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamFailed(GatewayError):
    status = 502
    type = "server_error"
    code = "upstream_error"


class NoHealthyBackend(GatewayError):
    status = 503
    type = "server_error"
    code = "no_healthy_backend"


class KeyStoreUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "key_store_unavailable"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "server_error"
    code = "upstream_timeout"
