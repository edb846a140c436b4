"""HTTP conventions of Nomad's agent: plain-text errors, index headers, blocking queries, ACLs.

Handlers raise `ApiError`; the middleware turns it into Nomad's `text/plain` body and status.
Reads go through `blocking()`, which honours `index` + `wait` (Go duration) and answers with
`X-Nomad-Index`, `X-Nomad-KnownLeader` and `X-Nomad-LastContact`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .cluster import Cluster
from .errors import ApiError
from .gotypes import DurationError, parse_duration, rfc3339

Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0
INVALID_METHOD = "Invalid method"
_ANONYMOUS = {"AccessorID": "anonymous", "SecretID": "anonymous", "Name": "Anonymous Token",
              "Type": "client", "Policies": ["anonymous"], "Roles": None, "Global": False,
              "Hash": None, "CreateTime": "0001-01-01T00:00:00Z", "ExpirationTime": None,
              "ExpirationTTL": 0, "CreateIndex": 0, "ModifyIndex": 0}


@dataclass
class Api:
    """What handlers need: the cluster, the agent's region and the ACL token (None = off)."""

    cluster: Cluster
    region: str
    acl_token: str | None
    heartbeat_seconds: float
    datacenter: str = "dc1"

    def token_object(self, secret: str | None) -> Json:
        if self.acl_token is None:
            raise ApiError(400, "ACL support disabled")
        if not secret:
            return dict(_ANONYMOUS)
        if secret != self.acl_token:
            raise ApiError(403, "ACL token not found")
        digest = hashlib.sha256(secret.encode()).digest()
        return {"AccessorID": str(uuid.uuid5(uuid.NAMESPACE_OID, "accessor:" + secret)),
                "SecretID": secret, "Name": "Bootstrap Token", "Type": "management",
                "Policies": None, "Roles": None, "Global": True,
                "Hash": base64.b64encode(digest).decode(), "CreateTime": rfc3339(0),
                "ExpirationTime": None,
                "ExpirationTTL": 0, "CreateIndex": 1, "ModifyIndex": 1}


API_KEY = web.AppKey("api", Api)


def api_of(request: web.Request) -> Api:
    return request.app[API_KEY]


def request_token(request: web.Request) -> str | None:
    token = request.headers.get("X-Nomad-Token")
    if token:
        return token
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


@web.middleware
async def nomad_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as Nomad writes them; ACL and region checks before any handler runs."""
    api = api_of(request)
    try:
        region = request.query.get("region", "")
        if region and region not in (api.region, "global"):
            raise ApiError(500, "No path to region")
        if api.acl_token is not None and request.path != "/v1/acl/token/self":
            token = request_token(request)
            if token and token != api.acl_token:
                raise ApiError(403, "ACL token not found")
            if not token:
                raise ApiError(403, "Permission denied")
        return await handler(request)
    except ApiError as exc:
        return text_error(exc.status, exc.message)
    except web.HTTPNotFound:
        # Nomad's mux answers unknown paths with a bare 404.
        return web.Response(status=404, content_type="text/plain", text="")
    except web.HTTPMethodNotAllowed:
        return text_error(405, INVALID_METHOD)


def text_error(status: int, message: str, index: int | None = None) -> web.Response:
    response = web.Response(status=status, text=message, content_type="text/plain")
    if index is not None:
        response.headers["X-Nomad-Index"] = str(index)
    return response


def json_response(body: Any, index: int | None = None, pretty: bool = False) -> web.Response:
    compact = json.dumps(body, separators=(",", ":"))
    text = json.dumps(body, indent=4) + "\n" if pretty else compact
    response = web.Response(text=text, content_type="application/json")
    if index is not None:
        response.headers["X-Nomad-Index"] = str(index)
        response.headers["X-Nomad-KnownLeader"] = "true"
        response.headers["X-Nomad-LastContact"] = "0"
    return response


def want_pretty(request: web.Request) -> bool:
    value = request.query.get("pretty")
    return value is not None and value != "0"


async def blocking(request: web.Request, tables: tuple[str, ...],
                   produce: Callable[[], Any],
                   index_of: Callable[[], int] | None = None) -> web.Response:
    """Run a read as a Nomad blocking query on the given state tables."""
    store = api_of(request).cluster.store
    min_index, wait = query_index(request), query_wait(request)
    current = index_of or (lambda: store.max_index(*tables))
    if min_index > 0:
        clock = asyncio.get_running_loop().time
        deadline = clock() + wait
        while current() <= min_index:
            remaining = deadline - clock()
            if remaining <= 0:
                break
            await store.wait_for_change(remaining)
    try:
        body = produce()
    except ApiError as exc:
        return text_error(exc.status, exc.message, index=current())
    return json_response(body, index=current(), pretty=want_pretty(request))


def query_index(request: web.Request) -> int:
    raw = request.query.get("index", "")
    if not raw:
        return 0
    if not raw.isdigit():
        raise ApiError(400, "Invalid index")
    return int(raw)


def query_wait(request: web.Request) -> float:
    raw = request.query.get("wait", "")
    if not raw:
        return DEFAULT_WAIT
    try:
        seconds = parse_duration(raw) / 1e9
    except DurationError as exc:
        raise ApiError(400, "Invalid wait time") from exc
    return min(max(seconds, 0.0), MAX_WAIT)


def query_bool(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "")
    if value == "":
        return False
    if value.lower() in ("1", "t", "true"):
        return True
    if value.lower() in ("0", "f", "false"):
        return False
    raise ApiError(500, f'Failed to parse value of "{name}" ({value}) as a bool: '
                        f'strconv.ParseBool: parsing "{value}": invalid syntax')


def namespace_of(request: web.Request) -> str:
    return request.query.get("namespace") or "default"


async def read_json(request: web.Request, allow_empty: bool = False) -> Any:
    """decodeBody: an empty body is 400 "Request body is empty", bad JSON a 400 too."""
    raw = await request.read()
    if not raw:
        if allow_empty:
            return None
        raise ApiError(400, "Request body is empty")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"invalid character in JSON body: {exc.msg}") from exc


def require(request: web.Request, *methods: str) -> None:
    if request.method not in methods:
        raise ApiError(405, INVALID_METHOD)
