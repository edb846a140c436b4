"""Plumbing shared by every handler: one declaration per operation.

``@operation(bp, "POST", "/task-groups", ...)`` registers the Sanic route, enforces the
caller's role, and records the operation for the OpenAPI document, so the document cannot
drift from what the server really serves.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bridge.domain.models import Principal, Role
from bridge.errors import Forbidden, MalformedJSON, Unauthorized, ValidationFailed
from bridge.runtime import BridgeRuntime, Database
from bridge.services.context import Actor
from bridge.services.users import authenticate

Access = Literal["read", "write", "admin", "agent", "wake", "public"]
# Which roles each kind of operation admits. Service accounts (agent, gateway) reach only
# the one thing they exist for.
ALLOWED: dict[str, frozenset[Role]] = {
    "read": frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER}),
    "write": frozenset({Role.ADMIN, Role.OPERATOR}),
    "admin": frozenset({Role.ADMIN}),
    "agent": frozenset({Role.ADMIN, Role.AGENT}),
    "wake": frozenset({Role.ADMIN, Role.OPERATOR, Role.GATEWAY}),
    # Documentation (the OpenAPI document) is readable without a token.
    "public": frozenset(Role),
}
Handler = Callable[..., Awaitable[HTTPResponse]]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class QueryParam:
    name: str
    description: str
    type: Literal["string", "integer"] = "string"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI style, e.g. /task-groups/{id}
    summary: str
    access: Access
    body: type[BaseModel] | None
    response: Any  # a pydantic model type, or None for 204
    status: int
    query: tuple[QueryParam, ...] = field(default_factory=tuple)
    tag: str = ""
    body_optional: bool = False
    media: str = "application/json"


OPERATIONS: list[Operation] = []
PREFIX = "/api/v1"
_DIGITS = re.compile(r"[0-9]{1,12}")  # ASCII only: str.isdigit() admits "²"


def operation(
    bp: Blueprint, method: str, path: str, *, summary: str, access: Access = "read",
    body: type[BaseModel] | None = None, response: Any = None, status: int = 200,
    query: tuple[QueryParam, ...] = (), body_optional: bool = False,
    media: str = "application/json",
) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request, **kwargs: Any) -> HTTPResponse:
            if access == "public":
                request.ctx.principal = None
                return await handler(request, **kwargs)
            principal = await _authenticate(request)
            _authorize(principal, access)
            request.ctx.principal = principal
            return await handler(request, **kwargs)

        sanic_path = path.replace("{", "<").replace("}", ">")
        bp.add_route(guarded, sanic_path, methods=[method], name=handler.__name__)
        OPERATIONS.append(Operation(method, path, summary, access, body, response, status,
                                    query, tag=bp.name, body_optional=body_optional,
                                    media=media))
        return guarded

    return decorate


def runtime(request: Request) -> BridgeRuntime:
    bridge: BridgeRuntime = request.app.ctx.bridge
    return bridge


def db(request: Request) -> Database:
    return runtime(request).db


def actor(request: Request) -> Actor:
    return Actor(principal=request.ctx.principal, request_id=request.ctx.request_id)


def parse_body(request: Request, model: type[M]) -> M:
    """Strictly parse the JSON body into ``model``: 400 if it is not JSON, 422 if invalid."""
    raw = request.body or b""
    if not raw.strip():
        raise MalformedJSON("the request needs a JSON object body")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        if any(e["type"] == "json_invalid" for e in errors):
            raise MalformedJSON("the body is not valid JSON",
                                details={"reason": errors[0]["msg"]}) from exc
        if any(e["type"] == "model_type" and not e["loc"] for e in errors):
            raise ValidationFailed("the body must be a JSON object") from exc
        raise ValidationFailed(_summarise(errors), details={"fields": _fields(errors)}) from exc


def page_params(request: Request) -> tuple[int, int]:
    return (int_arg(request, "limit", default=50, low=1, high=500),
            int_arg(request, "offset", default=0, low=0, high=10_000_000))


def int_arg(request: Request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise ValidationFailed(f"query parameter {name} must be an integer {low}-{high}",
                               details={"fields": [{"field": name, "message": "out of range"}]})
    return int(raw)


def str_arg(request: Request, name: str) -> str | None:
    value: str | None = request.args.get(name)
    return value or None


def respond(model: Any, obj: Any, status: int = 200) -> HTTPResponse:
    """Serialise a domain object through its response schema."""
    return json(model.model_validate(obj).model_dump(mode="json"), status=status)


def respond_page(model: Any, items: list[Any], total: int, limit: int, offset: int) -> HTTPResponse:
    return json({
        "items": [model.model_validate(i).model_dump(mode="json") for i in items],
        "total": total, "limit": limit, "offset": offset,
    })


def new_request_id() -> str:
    return uuid.uuid4().hex


async def _authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "this API needs Authorization: Bearer <token>",
            details={"hint": "heteroflow up prints the admin token and stores it in "
                             "HETEROFLOW_HOME/admin-token"},
        )
    return await authenticate(db(request), token.strip(), runtime(request).tokens)


def _authorize(principal: Principal, access: Access) -> None:
    allowed = ALLOWED[access]
    if principal.role not in allowed:
        needs = sorted(r.value for r in allowed)
        raise Forbidden(
            f"user {principal.name} is {principal.role.value}; this needs one of: "
            f"{', '.join(needs)}", details={"role": principal.role.value, "needs": needs})


def _fields(errors: list[Any]) -> list[dict[str, str]]:
    out = []
    for e in errors:
        loc = ".".join(str(p) for p in e["loc"]) or "(body)"
        message = e["msg"]
        if e["type"] == "extra_forbidden":
            message = "unknown field"
        elif e["type"] == "missing":
            message = "required"
        out.append({"field": loc, "message": message, "type": e["type"]})
    return out


def _summarise(errors: list[Any]) -> str:
    first = _fields(errors)[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{first['field']}: {first['message']}{more}"
