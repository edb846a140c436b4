"""What holds a node's GPUs, for changing which of them are shared (docs/gpu-sharing.md,
"Who changes the layout")."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.domain.status import TaskStatus
from bridge.storage.db import Conn


async def held_device_ids(conn: Conn, node_id: str,
                          statuses: Iterable[TaskStatus]) -> list[str]:
    """Device IDs (whole or share) that tasks on this node hold; Nomad-placed tasks carry
    Nomad's node id, which the node's agent reported as its nomad_node_id."""
    cur = await conn.execute(
        "SELECT t.gpu_id FROM tasks t WHERE t.gpu_id IS NOT NULL AND t.status = ANY(%s)"
        " AND (t.node_id = %s OR t.node_id = (SELECT n.nomad_node_id FROM nodes n"
        " WHERE n.id = %s))", ([s.value for s in statuses], node_id, node_id))
    return [i for r in await cur.fetchall() for i in str(r["gpu_id"]).split(",") if i]
