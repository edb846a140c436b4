"""Nodes: heartbeats in, offline marking, and what the create form and placement read."""

from __future__ import annotations

import logging

from bridge.crypto import SecretBox
from bridge.domain.models import Node
from bridge.domain.specs import HeartbeatReport
from bridge.errors import NotFound
from bridge.services.context import Actor
from bridge.storage import audit
from bridge.storage import nodes as node_rows
from bridge.storage import policies as policy_rows
from bridge.storage.db import Database

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 30


async def record_heartbeat(
    db: Database, box: SecretBox, report: HeartbeatReport, actor: Actor
) -> str:
    """Store what the agent reported; a node coming (back) online is audited."""
    assert actor.principal is not None
    sealed = box.seal(report.agent_secret) if report.agent_secret else None
    async with db.transaction() as conn:
        before = await node_rows.upsert_heartbeat(
            conn, node_id=report.node_id, name=report.name, agent_url=report.agent_url,
            agent_secret_enc=sealed, nomad_node_id=report.nomad_node_id, facts=report.facts,
            gpus=report.gpus, skipped=report.skipped, engines=report.engines,
            models=report.models, registered_by=actor.principal.name,
        )
        if report.engine_metrics:
            await policy_rows.save_engine_metrics(conn, report.node_id, report.engine_metrics)
        if before != "online":
            await audit.append(
                conn, actor=actor.principal, action="node.online", object_type="node",
                object_id=report.node_id, request_id=actor.request_id,
                details={"name": report.name, "gpus": len(report.gpus),
                         "was": before or "new"})
    return "online"


async def mark_offline_nodes(db: Database, older_than_seconds: int) -> list[str]:
    async with db.transaction() as conn:
        gone = await node_rows.mark_offline(conn, older_than_seconds)
        for node_id in gone:
            await audit.append(conn, actor=None, action="node.offline", object_type="node",
                               object_id=node_id,
                               details={"missed_heartbeats_for_s": older_than_seconds})
    if gone:
        log.warning("nodes offline", extra={"nodes": gone})
    return gone


async def list_nodes(db: Database) -> list[Node]:
    async with db.transaction() as conn:
        return await node_rows.list_nodes(conn)


async def get_node(db: Database, node_id: str) -> Node:
    async with db.transaction() as conn:
        node = await node_rows.get_node(conn, node_id)
    if node is None:
        raise NotFound(f"no node {node_id}", details={"id": node_id})
    return node
