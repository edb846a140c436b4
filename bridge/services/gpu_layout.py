"""Which GPUs of a node heteroflow-gpu offers as shares: read from, and set through, the
node's agent, never changing a GPU that something holds (invariant 2 of
docs/gpu-sharing.md: a whole GPU and its shares are never allocated at once)."""

from __future__ import annotations

from bridge.agents.client import AgentClient
from bridge.crypto import SecretBox
from bridge.errors import AgentUnavailable, Conflict, NotFound
from bridge.placement.shared import HOLDING
from bridge.services.context import Actor
from bridge.storage import audit
from bridge.storage import gpu_layout as layout_rows
from bridge.storage import nodes as node_rows
from bridge.storage.db import Database
from heteroflow_contracts.gpu_sharing import relayout_refusal


async def set_gpu_layout(db: Database, agents: AgentClient, box: SecretBox, node_id: str,
                         shares: dict[str, int], actor: Actor) -> dict[str, int]:
    """Make ``shares`` ({device ID: K}) the node's layout; 409 naming the held GPUs when a
    GPU whose form would change is held by a task."""
    async with db.transaction() as conn:
        if await node_rows.get_node(conn, node_id) is None:
            raise NotFound(f"no node {node_id}", details={"id": node_id})
        url, sealed = await node_rows.agent_endpoint(conn, node_id)
        held = await layout_rows.held_device_ids(conn, node_id, HOLDING)
    if not url or not sealed:
        raise AgentUnavailable(f"node {node_id} has no reachable agent", details={})
    secret = box.open(sealed)
    current = await agents.gpu_layout(url, secret)
    changing = sorted(g for g in {*current, *shares} if current.get(g) != shares.get(g))
    refusals = [r for g in changing if (r := relayout_refusal(g, held))]
    if refusals:
        raise Conflict("; ".join(refusals), details={"node": node_id, "held": sorted(held)})
    answer = await agents.set_gpu_layout(url, secret, shares)
    async with db.transaction() as conn:
        await audit.append(conn, actor=actor.principal, action="node.gpu_layout",
                           object_type="node", object_id=node_id, request_id=actor.request_id,
                           details={"shares": answer, "changed": changing})
    return answer
