"""/api/v1/usage: tokens and requests per key, route and model, as the gateways counted."""

from __future__ import annotations

from datetime import datetime

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bridge.api.http import QueryParam, db, operation, str_arg
from bridge.api.schemas import UsageOut
from bridge.errors import ValidationFailed
from bridge.services import usage as service

bp = Blueprint("usage", url_prefix="/api/v1")


@operation(bp, "GET", "/usage", summary="Usage summed per time bucket and per key/route/model",
           response=list[UsageOut],
           query=(QueryParam("api_key_id", "one key's usage"),
                  QueryParam("route_id", "one route's usage"),
                  QueryParam("model", "one model's usage"),
                  QueryParam("from", "ISO 8601 start (default: 24 h ago)"),
                  QueryParam("to", "ISO 8601 end (default: now)"),
                  QueryParam("bucket", "minute, hour (default) or day")))
async def list_usage(request: Request) -> HTTPResponse:
    bucket = str_arg(request, "bucket") or "hour"
    if bucket not in ("minute", "hour", "day"):
        raise ValidationFailed("bucket must be minute, hour or day",
                               details={"fields": [{"field": "bucket", "message": "unknown"}]})
    rows = await service.usage(
        db(request), api_key_id=str_arg(request, "api_key_id"),
        route_id=str_arg(request, "route_id"), model=str_arg(request, "model"),
        start=_when(request, "from"), end=_when(request, "to"), bucket=bucket)
    return json([UsageOut.model_validate(r).model_dump(mode="json") for r in rows])


def _when(request: Request, name: str) -> datetime | None:
    raw = str_arg(request, name)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ValidationFailed(f"{name} must be an ISO 8601 time, e.g. 2026-11-25T10:00:00Z",
                               details={"fields": [{"field": name, "message": "not a time"}]}
                               ) from exc
