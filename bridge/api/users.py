"""/api/v1/users, /api/v1/tokens, /api/v1/whoami and /api/v1/audit."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bridge.api.http import (
    QueryParam,
    actor,
    db,
    operation,
    page_params,
    parse_body,
    respond,
    respond_page,
    runtime,
    str_arg,
)
from bridge.api.schemas import (
    AuditOut,
    CreatedUserOut,
    CreateToken,
    CreateUser,
    NewTokenOut,
    Page,
    UserOut,
    WhoAmIOut,
)
from bridge.services import audit as audit_service
from bridge.services import users as service

bp = Blueprint("users", url_prefix="/api/v1")


@operation(bp, "GET", "/whoami", summary="The caller's user and role", response=WhoAmIOut)
async def whoami(request: Request) -> HTTPResponse:
    return respond(WhoAmIOut, request.ctx.principal)


@operation(bp, "GET", "/users", summary="List users", access="admin", response=list[UserOut])
async def list_users(request: Request) -> HTTPResponse:
    users = await service.list_users(db(request))
    return json([UserOut.model_validate(u).model_dump(mode="json") for u in users])


@operation(bp, "POST", "/users", summary="Create a user and its first token (shown once)",
           access="admin", body=CreateUser, response=CreatedUserOut, status=201)
async def create_user(request: Request) -> HTTPResponse:
    body = parse_body(request, CreateUser)
    user, token_id, token = await service.create_user(db(request), body.name, body.role,
                                                      actor(request))
    out = CreatedUserOut(**UserOut.model_validate(user).model_dump(),
                         token=NewTokenOut(id=token_id, user_id=user.id, name="default",
                                           token=token))
    return json(out.model_dump(mode="json"), status=201)


@operation(bp, "POST", "/users/{id}/tokens", summary="Issue another token for a user "
           "(shown once)", access="admin", body=CreateToken, response=NewTokenOut, status=201,
           body_optional=True)
async def create_token(request: Request, id: str) -> HTTPResponse:
    body = parse_body(request, CreateToken) if request.body else CreateToken()
    token_id, token = await service.create_token(db(request), id, body.name, actor(request))
    out = NewTokenOut(id=token_id, user_id=id, name=body.name, token=token)
    return json(out.model_dump(mode="json"), status=201)


@operation(bp, "DELETE", "/tokens/{id}", summary="Revoke a bearer token", access="admin",
           response=None, status=204)
async def revoke_token(request: Request, id: str) -> HTTPResponse:
    await service.revoke_token(db(request), id, actor(request), runtime(request).tokens)
    return HTTPResponse(status=204)


@operation(bp, "GET", "/audit", summary="Who did what, when, to which object",
           response=Page[AuditOut],
           query=(QueryParam("object_type", "task_group, task, model_route, api_key, user..."),
                  QueryParam("object_id", "one object's trail"),
                  QueryParam("actor", "by user name"),
                  QueryParam("action", "e.g. task_group.create"),
                  QueryParam("limit", "page size, 1-500 (default 50)", "integer"),
                  QueryParam("offset", "items to skip (default 0)", "integer")))
async def list_audit(request: Request) -> HTTPResponse:
    limit, offset = page_params(request)
    items, total = await audit_service.list_audit(
        db(request), object_type=str_arg(request, "object_type"),
        object_id=str_arg(request, "object_id"), actor=str_arg(request, "actor"),
        action=str_arg(request, "action"), limit=limit, offset=offset,
    )
    return respond_page(AuditOut, items, total, limit, offset)
