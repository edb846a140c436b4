"""/api/v1/agent/heartbeat (agents), /api/v1/nodes and /api/v1/models (people, the UI)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bridge.api.http import QueryParam, actor, db, operation, parse_body, respond, runtime, str_arg
from bridge.api.schemas import Heartbeat, HeartbeatOut, NodeModelOut, NodeOut
from bridge.domain.specs import HeartbeatReport
from bridge.services import nodes as service

bp = Blueprint("nodes", url_prefix="/api/v1")


@operation(bp, "POST", "/agent/heartbeat", summary="A node agent reports its node, GPUs, "
           "models and engines (every 30 s)", access="agent", body=Heartbeat,
           response=HeartbeatOut)
async def heartbeat(request: Request) -> HTTPResponse:
    body = parse_body(request, Heartbeat)
    report = HeartbeatReport(
        node_id=body.node_id, name=body.name, agent_url=body.agent_url,
        agent_secret=body.agent_secret, nomad_node_id=body.nomad_node_id, facts=body.facts,
        gpus=[g.model_dump() for g in body.gpus], skipped=dict(body.skipped),
        engines=list(body.engines),
        models=None if body.models is None else [m.model_dump() for m in body.models],
        engine_metrics={k: v.model_dump(exclude_none=True)
                        for k, v in body.engine_metrics.items()},
    )
    status = await service.record_heartbeat(db(request), runtime(request).secrets, report,
                                            actor(request))
    return respond(HeartbeatOut, {"node_id": body.node_id, "status": status,
                                  "interval_seconds": service.HEARTBEAT_SECONDS})


@operation(bp, "GET", "/nodes", summary="Nodes with their GPUs, engines and status",
           response=list[NodeOut])
async def list_nodes(request: Request) -> HTTPResponse:
    nodes = await service.list_nodes(db(request))
    return json([NodeOut.model_validate(n).model_dump(mode="json") for n in nodes])


@operation(bp, "GET", "/nodes/{id}", summary="One node", response=NodeOut)
async def get_node(request: Request, id: str) -> HTTPResponse:
    return respond(NodeOut, await service.get_node(db(request), id))


@operation(bp, "GET", "/models", summary="Models the agents found, per node",
           response=list[NodeModelOut],
           query=(QueryParam("node_id", "only this node's"),
                  QueryParam("name", "only models whose name contains this")))
async def list_models(request: Request) -> HTTPResponse:
    node_id, name = str_arg(request, "node_id"), str_arg(request, "name")
    out = []
    for node in await service.list_nodes(db(request)):
        if node_id and node.id != node_id:
            continue
        for model in node.models:
            if name and name.lower() not in str(model.get("name", "")).lower():
                continue
            out.append(NodeModelOut.model_validate(
                {**model, "node_id": node.id, "node_name": node.name}).model_dump(mode="json"))
    return json(out)
