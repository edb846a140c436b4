"""Rows of the self-managing loops: policy columns of task_groups, service_policy_state, and
the gateways' per-service counters (gateway_signals, migration 0006)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from bridge.domain.models import Task, TaskGroup
from bridge.storage import task_groups as group_rows
from bridge.storage.db import Conn


@dataclass(frozen=True, slots=True)
class PolicyState:
    group_id: str
    decision: str = ""
    decided_at: datetime | None = None
    last_scaled_at: datetime | None = None
    window_inside: bool | None = None
    window_note: str = ""
    next_transition: datetime | None = None
    idle_note: str = ""


@dataclass(frozen=True, slots=True)
class GatewayLoad:
    """The gateways' counters for one service, summed over the replicas that are fresh."""

    inflight: int
    waiting: int
    requests: int
    last_request_at: datetime | None
    gateways: int


_STATE_COLUMNS = ("group_id, decision, decided_at, last_scaled_at, window_inside, window_note,"
                  " next_transition, idle_note")


async def set_scale_policy(conn: Conn, group_id: str, *, auto_scale: bool, min_replicas: int,
                           max_replicas: int, policy: dict[str, Any] | None) -> None:
    await conn.execute(
        "UPDATE task_groups SET auto_scale = %s, min_replicas = %s, max_replicas = %s,"
        " scale_policy = %s, updated_at = now() WHERE id = %s",
        (auto_scale, min_replicas, max_replicas, Jsonb(policy) if policy else None, group_id))


async def set_schedule_window(conn: Conn, group_id: str, window: dict[str, Any] | None) -> None:
    await conn.execute(
        "UPDATE task_groups SET schedule_window = %s, updated_at = now() WHERE id = %s",
        (Jsonb(window) if window else None, group_id))
    # The next round works the phase out afresh.
    await conn.execute(
        "UPDATE service_policy_state SET window_inside = NULL, window_note = '',"
        " next_transition = NULL WHERE group_id = %s", (group_id,))


async def get_state(conn: Conn, group_id: str) -> PolicyState | None:
    cur = await conn.execute(
        f"SELECT {_STATE_COLUMNS} FROM service_policy_state WHERE group_id = %s", (group_id,))
    row = await cur.fetchone()
    return PolicyState(**row) if row else None


async def all_states(conn: Conn) -> dict[str, PolicyState]:
    cur = await conn.execute(f"SELECT {_STATE_COLUMNS} FROM service_policy_state")
    return {r["group_id"]: PolicyState(**r) for r in await cur.fetchall()}


async def save_states(conn: Conn, states: list[PolicyState]) -> None:
    """Upsert what changed this round, in one statement."""
    if not states:
        return
    await conn.execute(
        f"INSERT INTO service_policy_state ({_STATE_COLUMNS})"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[],"
        " %s::boolean[], %s::text[], %s::timestamptz[], %s::text[])"
        " AS s(group_id, decision, decided_at, last_scaled_at, window_inside, window_note,"
        " next_transition, idle_note)"
        " WHERE EXISTS (SELECT 1 FROM task_groups g WHERE g.id = s.group_id)"
        " ON CONFLICT (group_id) DO UPDATE SET decision = EXCLUDED.decision,"
        " decided_at = EXCLUDED.decided_at, last_scaled_at = EXCLUDED.last_scaled_at,"
        " window_inside = EXCLUDED.window_inside, window_note = EXCLUDED.window_note,"
        " next_transition = EXCLUDED.next_transition, idle_note = EXCLUDED.idle_note",
        [[s.group_id for s in states], [s.decision for s in states],
         [s.decided_at for s in states], [s.last_scaled_at for s in states],
         [s.window_inside for s in states], [s.window_note for s in states],
         [s.next_transition for s in states], [s.idle_note for s in states]])


async def gateway_loads(conn: Conn, fresh_seconds: float) -> dict[str, GatewayLoad]:
    """Per service: the sum over gateway replicas that published within ``fresh_seconds``."""
    cur = await conn.execute(
        "SELECT group_id, sum(inflight)::int AS inflight, sum(waiting)::int AS waiting,"
        " sum(requests)::bigint AS requests, max(last_request_at) AS last_request_at,"
        " count(*)::int AS gateways FROM gateway_signals"
        " WHERE updated_at > now() - make_interval(secs => %s) GROUP BY group_id",
        (fresh_seconds,))
    return {r["group_id"]: GatewayLoad(r["inflight"], r["waiting"], r["requests"],
                                       r["last_request_at"], r["gateways"])
            for r in await cur.fetchall()}


async def fresh_gateways(conn: Conn, fresh_seconds: float) -> int:
    cur = await conn.execute(
        "SELECT count(DISTINCT gateway_id)::int AS n FROM gateway_signals"
        " WHERE updated_at > now() - make_interval(secs => %s)", (fresh_seconds,))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def node_gpus(conn: Conn) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]:
    """Per node id: the GPUs (with utilisation) and facts its agent last reported."""
    cur = await conn.execute("SELECT id, gpus, facts FROM nodes")
    return {r["id"]: (r["gpus"] or [], r["facts"] or {}) for r in await cur.fetchall()}


async def managed_groups(conn: Conn) -> list[TaskGroup]:
    """Groups a policy applies to (autoscaling, a window or idle sleep), with their tasks:
    two queries whatever their number."""
    cur = await conn.execute(
        f"SELECT {group_rows.GROUP_COLUMNS} FROM task_groups WHERE auto_scale"
        " OR schedule_window IS NOT NULL OR idle_timeout_minutes > 0 ORDER BY id")
    groups = await cur.fetchall()
    if not groups:
        return []
    by_group: dict[str, list[Task]] = {g["id"]: [] for g in groups}
    cur = await conn.execute(
        f"SELECT {group_rows.TASK_COLUMNS} FROM tasks WHERE group_id = ANY(%s)"
        " ORDER BY group_id, rank", (list(by_group),))
    for r in await cur.fetchall():
        by_group[r["group_id"]].append(group_rows.row_to_task(r))
    return [group_rows.row_to_task_group(g, by_group[g["id"]]) for g in groups]


async def save_engine_metrics(conn: Conn, node_id: str,
                              readings: dict[str, dict[str, Any]]) -> None:
    """The engines' latest load, onto the tasks this node runs (others are ignored).
    Stamped with the bridge's clock on arrival: nodes' clocks need not agree with it."""
    ids = sorted(readings)
    await conn.execute(
        "UPDATE tasks t SET engine_metrics = x.m, engine_metrics_at = now()"
        " FROM unnest(%s::text[], %s::jsonb[]) AS x(id, m)"
        " WHERE t.id = x.id AND t.node_id = %s",
        (ids, [Jsonb(readings[i]) for i in ids], node_id))


async def engine_metrics(conn: Conn, group_ids: list[str], fresh_seconds: float
                         ) -> dict[str, tuple[dict[str, float] | None, str]]:
    """Per task of these groups: (metrics, "") or (None, why they are missing)."""
    cur = await conn.execute(
        "SELECT id, engine_metrics, engine_metrics_at,"
        " engine_metrics_at > now() - make_interval(secs => %s) AS fresh"
        " FROM tasks WHERE group_id = ANY(%s) AND status = 'running'",
        (fresh_seconds, group_ids))
    out: dict[str, tuple[dict[str, float] | None, str]] = {}
    for r in await cur.fetchall():
        reading = r["engine_metrics"] or {}
        if r["engine_metrics_at"] is None:
            out[r["id"]] = (None, "its agent has reported no engine metrics yet")
        elif not r["fresh"]:
            out[r["id"]] = (None, f"its engine metrics are older than {fresh_seconds:g} s")
        elif reading.get("metrics"):
            out[r["id"]] = (reading["metrics"], "")
        else:
            out[r["id"]] = (None, str(reading.get("missing") or "no engine metrics"))
    return out


async def backend_inflight(conn: Conn, task_ids: list[str], fresh_seconds: float) -> int:
    """Requests the fresh gateway rows still have in flight on these tasks."""
    cur = await conn.execute(
        "SELECT coalesce(sum(b.value::int), 0)::int AS n FROM gateway_signals s,"
        " jsonb_each_text(s.backends) AS b WHERE s.updated_at > now() - make_interval(secs"
        " => %s) AND b.key = ANY(%s)", (fresh_seconds, task_ids))
    row = await cur.fetchone()
    return int(row["n"]) if row else 0
