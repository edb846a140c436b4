"""The policy loop's rounds against real PostgreSQL with an injected clock: a schedule
window moves the bounds and the loop follows (rows only: placement off), the status shows
the next transition, a manual scale outside the window is refused, and the gateways'
counters feed the autoscaler's sentence."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bridge.agents.client import AgentClient
from bridge.crypto import SecretBox
from bridge.services.policy_loop import PolicyLoop
from bridge.settings import BridgeSettings
from bridge.storage.db import Database
from tests.support.bridge_helpers import error_of, seed_example
from tests.support.pg import TEST_SECRET_KEY

# Fridays 09:00-17:00 Berlin; outside: 1 replica
WINDOW = {"windows": [{"days": ["fri"], "start": "09:00", "end": "17:00",
                       "timezone": "Europe/Berlin"}], "outside": "replicas",
          "outside_replicas": 1}


class Clock:
    def __init__(self, at: str) -> None:
        self.now = datetime.fromisoformat(at)

    def __call__(self) -> datetime:
        return self.now


async def running_group(admin: Any, bridge: Any, tasks: int) -> str:
    r = await admin.post("/task-groups", json=seed_example(min_replicas=1, max_replicas=4,
                                                       idle_timeout_minutes=0))
    gid = str(r.json()["id"])
    bridge.sql("UPDATE task_groups SET status = 'running' WHERE id = %s", (gid,))
    bridge.sql("UPDATE tasks SET status = 'running' WHERE group_id = %s", (gid,))
    if tasks > 1:
        r = await admin.put(f"/task-groups/{gid}/scale", json={"replicas": tasks})
        assert r.status_code == 200, r.text
        bridge.sql("UPDATE tasks SET status = 'running' WHERE group_id = %s", (gid,))
    return gid


async def test_window_bounds_follow_the_clock(admin, bridge) -> None:
    gid = await running_group(admin, bridge, tasks=3)
    assert (await admin.put(f"/task-groups/{gid}/schedule-window", json=WINDOW)
            ).status_code == 200
    clock = Clock("2026-03-27T10:00:00+00:00")  # Friday 11:00 Berlin: inside
    db = Database(bridge.db_url, max_size=2)
    await db.open()
    agents = AgentClient()
    loop = PolicyLoop(db, None, agents, SecretBox(TEST_SECRET_KEY),
                      BridgeSettings(home=Path("nonexistent")), clock=clock)
    try:
        await loop.round()
        g = (await admin.get(f"/task-groups/{gid}")).json()
        assert len(g["tasks"]) == 3 and g["policy"]["window_inside"] is True
        assert g["policy"]["next_transition"] == "2026-03-27T16:00:00Z"
        # inside the window a manual scale moves within the service's own bounds
        bridge.sql("UPDATE tasks SET status = 'running' WHERE group_id = %s", (gid,))

        clock.now = datetime(2026, 3, 27, 16, 0, tzinfo=UTC)  # 17:00 Berlin: outside
        await loop.round()
        g = (await admin.get(f"/task-groups/{gid}")).json()
        assert len(g["tasks"]) == 1, g["policy"]
        assert g["policy"]["decision"] == "scaled 3 -> 1: the schedule window's bounds"
        assert g["policy"]["window_inside"] is False
        assert g["policy"]["next_transition"] == "2026-04-03T07:00:00Z"  # next Friday, CEST
        audit = bridge.sql("SELECT details FROM audit_log WHERE object_id = %s AND action ="
                           " 'task_group.scale' ORDER BY id DESC LIMIT 1", (gid,))
        assert audit[0][0]["reason"] == "scaled 3 -> 1: the schedule window's bounds"
    finally:
        await agents.close()
        await db.close()


async def test_manual_scale_outside_the_window_is_refused(admin, bridge) -> None:
    gid = await running_group(admin, bridge, tasks=1)
    always_outside = {**WINDOW, "windows": [{"cron": "0 0 1 1 *", "duration_minutes": 1,
                                             "timezone": "UTC"}]}
    assert (await admin.put(f"/task-groups/{gid}/schedule-window", json=always_outside)
            ).status_code == 200
    r = await admin.put(f"/task-groups/{gid}/scale", json={"replicas": 2})
    assert r.status_code == 422
    assert "outside its schedule windows the service runs 1" in error_of(r)["message"]


async def test_gateway_counters_drive_the_sentence(admin, bridge) -> None:
    gid = await running_group(admin, bridge, tasks=1)
    await admin.put(f"/task-groups/{gid}/scale-policy", json={
        "auto_scale": True, "min_replicas": 1, "max_replicas": 2,
        "metric": "concurrent_requests", "target_value": 2, "cooldown_seconds": 30})
    # two gateway replicas, 3 and 4 in flight: the bridge sums them
    for gw, n in (("gw-a", 3), ("gw-b", 4)):
        bridge.sql("INSERT INTO gateway_signals (gateway_id, group_id, inflight, waiting,"
                   " requests) VALUES (%s, %s, %s, 0, 9), (%s, '', 0, 0, 0)",
                   (gw, gid, n, gw))
    db = Database(bridge.db_url, max_size=2)
    await db.open()
    agents = AgentClient()
    loop = PolicyLoop(db, None, agents, SecretBox(TEST_SECRET_KEY),
                      BridgeSettings(home=Path("nonexistent")))
    try:
        await loop.round()
    finally:
        await agents.close()
        await db.close()
    decision = (await admin.get(f"/task-groups/{gid}")).json()["policy"]["decision"]
    assert decision == ("not scaled yet: 7 requests in flight per replica > target 2 "
                        "for 0 of 30 s"), decision
    holds = bridge.sql("SELECT details->>'reason' FROM audit_log WHERE object_id = %s AND"
                       " action = 'task_group.autoscale_hold'", (gid,))
    assert [h[0] for h in holds] == [decision]  # a "no" is audited when its kind changes
