"""GET /api/v1/openapi.json, built from the operation registry and the pydantic schemas.

Nothing here is written by hand per endpoint: an operation missing from the registry does
not exist on the server either (tests check both directions).
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bridge.api.http import ALLOWED, OPERATIONS, PREFIX, Operation, operation, runtime
from bridge.api.schemas import ErrorOut

bp = Blueprint("openapi", url_prefix="/api/v1")

_REF = "#/components/schemas/{model}"
_ERRORS = {
    "400": "Malformed JSON or an unreadable request",
    "401": "Missing, unknown or revoked bearer token",
    "403": "The caller's role does not allow this",
    "404": "No such object",
    "409": "Conflicts with existing state (name taken, illegal status transition)",
    "413": "Request body too large",
    "422": "A field is unknown, of the wrong type or out of range",
    "503": "The database (or a node agent, Nomad) cannot be reached now; retry shortly",
}


@operation(bp, "GET", "/openapi.json", summary="This document (readable without a token)",
           access="public", response=None)
async def openapi_json(request: Request) -> HTTPResponse:
    return json(build_document(version=runtime(request).version))


def build_document(version: str) -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    error_schema = _schema(ErrorOut, components, "serialization")
    for op in OPERATIONS:
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = _operation(
            op, components, error_schema)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "HeteroFlow bridge API",
            "version": version,
            "description": "Services (task groups), tasks, model routes, gateway API keys, "
                           "users and the audit trail. Every call but this document needs "
                           "`Authorization: Bearer <token>`.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(op: Operation, components: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _path_params(op.path)
    ]
    params += [
        {"name": q.name, "in": "query", "required": False, "description": q.description,
         "schema": {"type": q.type}}
        for q in op.query
    ]
    responses: dict[str, Any] = {}
    if op.response is None:
        responses[str(op.status)] = {"description": "Done" if op.status == 204 else "OK"}
        if op.status != 204:
            schema = {"type": "string"} if op.media.startswith("text/") else {}
            responses[str(op.status)]["content"] = {op.media: {"schema": schema}}
    else:
        responses[str(op.status)] = {
            "description": "OK",
            "content": {"application/json": {
                "schema": _schema(op.response, components, "serialization")}},
        }
    for code, text in _ERRORS.items():
        if code in ("400", "413", "422") and op.body is None and not op.query:
            continue
        if code == "404" and not _path_params(op.path):
            continue
        responses[code] = {"description": text,
                           "content": {"application/json": {"schema": error}}}
    out: dict[str, Any] = {
        "operationId": f"{op.method.lower()}_{op.path.strip('/').replace('/', '_')}"
                       .replace("{", "").replace("}", "").replace("-", "_").replace(".", "_"),
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
        "x-required-roles": ([] if op.access == "public"
                             else sorted(r.value for r in ALLOWED[op.access])),
    }
    if op.access == "public":
        out["security"] = []
        for code in ("401", "403"):
            responses.pop(code, None)
    if op.body is not None:
        out["requestBody"] = {"required": not op.body_optional,
                              "content": {"application/json": {
                                  "schema": _schema(op.body, components, "validation")}}}
    return out


def _schema(tp: Any, components: dict[str, Any], mode: str) -> dict[str, Any]:
    schema: dict[str, Any] = TypeAdapter(tp).json_schema(
        mode=mode, ref_template=_REF)  # type: ignore[arg-type]
    components.update(schema.pop("$defs", {}))
    return schema


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]
