"""/api/v1/endpoints/{id}/api-keys: gateway keys of one inference endpoint."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bridge.api.http import actor, db, operation, parse_body, respond
from bridge.api.schemas import ApiKeyOut, CreateApiKey, NewApiKeyOut
from bridge.services import api_keys as service

bp = Blueprint("api_keys", url_prefix="/api/v1")


@operation(bp, "GET", "/endpoints/{id}/api-keys", summary="List an endpoint's keys "
           "(prefixes only)", response=list[ApiKeyOut])
async def list_keys(request: Request, id: str) -> HTTPResponse:
    keys = await service.list_keys(db(request), id)
    return json([ApiKeyOut.model_validate(k).model_dump(mode="json") for k in keys])


@operation(bp, "POST", "/endpoints/{id}/api-keys", summary="Create a key; its clear text "
           "is in this answer only", access="write", body=CreateApiKey, response=NewApiKeyOut,
           status=201, body_optional=True)
async def create_key(request: Request, id: str) -> HTTPResponse:
    body = parse_body(request, CreateApiKey) if request.body else CreateApiKey()
    key, secret = await service.create_key(db(request), id, body.name, actor(request))
    out = NewApiKeyOut(**ApiKeyOut.model_validate(key).model_dump(), key=secret)
    return json(out.model_dump(mode="json"), status=201)


@operation(bp, "DELETE", "/endpoints/{id}/api-keys/{key_id}", summary="Revoke a key",
           access="write", response=ApiKeyOut)
async def revoke_key(request: Request, id: str, key_id: str) -> HTTPResponse:
    return respond(ApiKeyOut, await service.revoke_key(db(request), id, key_id, actor(request)))
