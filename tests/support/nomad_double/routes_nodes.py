"""Node, client-metadata, ACL-token and event-stream endpoints."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web

from .errors import ApiError
from .filters import matches
from .httpapi import (
    api_of,
    blocking,
    json_response,
    namespace_of,
    query_bool,
    read_json,
    request_token,
    require,
)
from .objects import node_stub

Json = dict[str, Any]
_META_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


async def nodes(request: web.Request) -> web.StreamResponse:
    require(request, "GET")
    store = api_of(request).cluster.store
    prefix, expression = request.query.get("prefix", ""), request.query.get("filter", "")
    resources = query_bool(request, "resources")

    def produce() -> list[Json]:
        return [node_stub(n, resources) for n in sorted(store.nodes.values(),
                                                        key=lambda n: n["ID"])
                if n["ID"].startswith(prefix) and (not expression or matches(expression, n))]

    return await blocking(request, ("nodes",), produce)


async def node(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"]
    cluster = api_of(request).cluster
    store = cluster.store
    if tail.endswith("/allocations"):
        require(request, "GET")
        node_id = tail[: -len("/allocations")]
        return await blocking(request, ("allocs",), lambda: sorted(
            store.node_allocs(node_id), key=lambda a: a["ID"]))
    if tail.endswith("/eligibility"):
        require(request, "PUT", "POST")
        node_id = tail[: -len("/eligibility")]
        body = {str(k).lower(): v for k, v in (await read_json(request) or {}).items()}
        value = body.get("eligibility")
        if value not in ("eligible", "ineligible"):
            raise ApiError(400, "invalid scheduling eligibility")
        response = cluster.set_node_eligibility(node_id, value == "eligible")
        return json_response(response, index=response["Index"])
    require(request, "GET")

    def produce() -> Json:
        found = store.nodes.get(tail)
        if found is None:
            raise ApiError(404, "node not found")
        return found

    return await blocking(request, ("nodes",), produce)


async def client_metadata(request: web.Request) -> web.StreamResponse:
    require(request, "GET", "POST")
    cluster = api_of(request).cluster
    node_id = request.query.get("node_id", "")
    if request.method == "GET":
        if not node_id:
            raise ApiError(400, "No local Node and node_id not provided")
        return json_response(cluster.node_meta(node_id))
    body = await read_json(request)
    fields = {str(k).lower(): v for k, v in (body or {}).items()}
    node_id = node_id or str(fields.get("nodeid") or "")
    meta = fields.get("meta")
    if not node_id:
        raise ApiError(400, "No local Node and node_id not provided")
    if not meta or not isinstance(meta, dict):
        raise ApiError(400, "missing required Meta object")
    for key, value in meta.items():
        if key == "":
            raise ApiError(400, "metadata keys must not be empty")
        if not all(_META_PART.match(part) for part in key.split(".")):
            raise ApiError(400, f'"{key}" is invalid; metadata keys must be valid dotted hcl '
                                "identifiers")
        if value is not None and not isinstance(value, str):
            raise ApiError(400, "json: cannot unmarshal into Go struct field "
                                "NodeMetaApplyRequest.Meta of type string")
    return json_response(cluster.apply_node_meta(node_id, meta))


async def token_self(request: web.Request) -> web.StreamResponse:
    require(request, "GET")
    api = api_of(request)
    return json_response(api.token_object(request_token(request)), index=1)


async def event_stream(request: web.Request) -> web.StreamResponse:
    require(request, "GET")
    api = api_of(request)
    raw_index = request.query.get("index", "") or "0"
    if not raw_index.lstrip("-").isdigit():
        raise ApiError(400, f'Unable to parse index: strconv.Atoi: parsing "{raw_index}": '
                            "invalid syntax")
    topics: dict[str, list[str]] = {}
    for raw in request.query.getall("topic", []):
        parts = raw.split(":")
        if len(parts) > 2:
            raise ApiError(400, "Invalid topic query: error parsing topics: Invalid key value "
                                f"pair for topic, topic: {raw}")
        topics.setdefault(parts[0], []).append(parts[1] if len(parts) == 2 else "*")
    broker = api.cluster.broker
    sub = broker.subscribe(topics or {"*": ["*"]}, namespace_of(request), int(raw_index))
    response = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Cache-Control": "no-cache"})
    try:
        await response.prepare(request)
        clock = asyncio.get_running_loop().time
        beat = clock() + api.heartbeat_seconds
        while not sub.closed:
            batch = await broker.next_batch(sub, max(0.0, beat - clock()))
            if batch is not None:
                await response.write(batch[1].encode() + b"\n")
            if clock() >= beat:
                await response.write(b"{}\n")
                beat = clock() + api.heartbeat_seconds
    except ConnectionResetError:
        pass
    finally:
        broker.unsubscribe(sub)
    return response
