"""PUT /api/v1/task-groups/{id}/scale-policy and /schedule-window against real PostgreSQL:
validation, the audit entry per change, GET showing both, and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.bridge_helpers import error_of, seed_example

POLICY = {"auto_scale": True, "min_replicas": 1, "max_replicas": 3,
          "metric": "concurrent_requests", "target_value": 4, "cooldown_seconds": 60,
          "down_delay_seconds": 120}


async def created(admin: Any) -> str:
    r = await admin.post("/task-groups", json=seed_example())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_scale_policy_is_stored_audited_and_shown(admin, bridge) -> None:
    gid = await created(admin)
    r = await admin.put(f"/task-groups/{gid}/scale-policy", json=POLICY)
    assert r.status_code == 200, r.text
    g = r.json()
    assert (g["auto_scale"], g["min_replicas"], g["max_replicas"]) == (True, 1, 3)
    assert g["scale_policy"] == {"metric": "concurrent_requests", "target_value": 4,
                                 "cooldown_seconds": 60, "down_delay_seconds": 120}
    shown = (await admin.get(f"/task-groups/{gid}")).json()
    assert shown["scale_policy"] == g["scale_policy"] and "policy" in shown
    audit = bridge.sql("SELECT details FROM audit_log WHERE object_id = %s AND action = "
                       "'task_group.scale_policy'", (gid,))
    assert len(audit) == 1 and audit[0][0]["after"]["max_replicas"] == 3
    assert audit[0][0]["before"]["auto_scale"] is False
    off = await admin.put(f"/task-groups/{gid}/scale-policy", json={"auto_scale": False})
    assert off.status_code == 200 and off.json()["auto_scale"] is False


@pytest.mark.parametrize(("body", "words"), [
    ({**POLICY, "metric": "tokens"}, "metric"),
    ({**POLICY, "cooldown_seconds": 10}, "cooldown_seconds"),
    ({**POLICY, "min_replicas": 0}, "min_replicas"),
    ({**POLICY, "max_replicas": -1}, "max_replicas"),
    ({**POLICY, "min_replicas": 3, "max_replicas": 2}, "below min_replicas"),
    ({"auto_scale": True, "min_replicas": 1}, "needs metric and target_value"),
    ({**POLICY, "target_value": "4"}, "target_value"),
    ({**POLICY, "surprise": 1}, "surprise"),
])
async def test_scale_policy_validation(admin, body: dict[str, Any], words: str) -> None:
    gid = await created(admin)
    r = await admin.put(f"/task-groups/{gid}/scale-policy", json=body)
    assert r.status_code == 422, r.text
    assert words in str(error_of(r)), r.text


async def test_unknown_group_is_404(admin) -> None:
    r = await admin.put("/task-groups/tg-0-0000/scale-policy", json=POLICY)
    assert r.status_code == 404 and error_of(r)["code"]
    r = await admin.put("/task-groups/tg-0-0000/schedule-window", json={"windows": []})
    assert r.status_code == 404


WINDOWS = {"windows": [
    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00",
     "timezone": "Europe/Berlin"},
    {"cron": "0 10 * * sat", "duration_minutes": 240, "timezone": "America/New_York"}],
    "outside": "replicas", "outside_replicas": 1}


async def test_schedule_window_is_stored_audited_and_cleared(admin, bridge) -> None:
    gid = await created(admin)
    r = await admin.put(f"/task-groups/{gid}/schedule-window", json=WINDOWS)
    assert r.status_code == 200, r.text
    stored = r.json()["schedule_window"]
    assert stored["outside"] == "replicas" and stored["outside_replicas"] == 1
    assert stored["windows"][1] == WINDOWS["windows"][1] | {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
    assert (await admin.get(f"/task-groups/{gid}")).json()["schedule_window"] == stored
    cleared = await admin.put(f"/task-groups/{gid}/schedule-window", json={"windows": []})
    assert cleared.status_code == 200 and cleared.json()["schedule_window"] is None
    actions = bridge.sql("SELECT count(*) FROM audit_log WHERE object_id = %s AND action ="
                         " 'task_group.schedule_window'", (gid,))
    assert actions[0][0] == 2


@pytest.mark.parametrize(("window", "words"), [
    ({"start": "25:00", "end": "18:00"}, "start"),
    ({"start": "08:00", "end": "08:00"}, "equal"),
    ({"start": "08:00"}, "start and end"),
    ({"start": "08:00", "end": "09:00", "timezone": "Mars/Olympus"}, "unknown time zone"),
    ({"start": "08:00", "end": "09:00", "days": ["someday"]}, "days"),
    ({"cron": "0 8 * * *"}, "duration_minutes"),
    ({"cron": "0 8 * * * *", "duration_minutes": 5}, "exactly 5 fields"),
    ({"cron": "61 8 * * *", "duration_minutes": 5}, "not a valid cron"),
    ({"cron": "0 8 * * *", "duration_minutes": 5, "start": "08:00"}, "not start/end"),
])
async def test_schedule_window_validation(admin, window: dict[str, Any], words: str) -> None:
    gid = await created(admin)
    r = await admin.put(f"/task-groups/{gid}/schedule-window", json={"windows": [window]})
    assert r.status_code == 422, r.text
    assert words in str(error_of(r)), r.text


async def test_outside_replicas_goes_with_outside(admin) -> None:
    gid = await created(admin)
    w = WINDOWS["windows"][:1]
    for body in ({"windows": w, "outside": "replicas"},
                 {"windows": w, "outside": "sleep", "outside_replicas": 2}):
        r = await admin.put(f"/task-groups/{gid}/schedule-window", json=body)
        assert r.status_code == 422 and "outside_replicas" in r.text, r.text


async def test_openapi_documents_both(admin) -> None:
    doc = (await admin.get("/openapi.json")).json()
    for path in ("/api/v1/task-groups/{id}/scale-policy",
                 "/api/v1/task-groups/{id}/schedule-window"):
        op = doc["paths"][path]["put"]
        assert op["requestBody"] and "422" in op["responses"], op
    got = doc["paths"]["/api/v1/task-groups/{id}"]["get"]["responses"]["200"]
    assert "policy" in got["content"]["application/json"]["schema"]["properties"]
    assert "PolicyStatusOut" in doc["components"]["schemas"]


async def test_cli_turns_autoscaling_on_and_status_explains(admin, bridge, capsys) -> None:
    import asyncio

    from bridge.cli.main import main

    gid = await created(admin)
    cli = ["-address", bridge.base_url, "-token", bridge.admin_token, "service"]
    rc = await asyncio.to_thread(main, [*cli, "policy", gid, "-metric", "concurrent_requests",
                                        "-target", "4", "-max", "3"])
    assert rc == 0
    assert "autoscaling on, 1-3 replicas, concurrent_requests target 4" in \
        capsys.readouterr().out
    rc = await asyncio.to_thread(main, [*cli, "window", gid, "-days", "fri-mon", "-start",
                                        "22:00", "-end", "06:00", "-tz", "Europe/Berlin",
                                        "-outside", "1"])
    assert rc == 0
    g = (await admin.get(f"/task-groups/{gid}")).json()
    assert g["schedule_window"]["windows"][0]["days"] == ["fri", "sat", "sun", "mon"]
    assert g["schedule_window"]["outside_replicas"] == 1
    capsys.readouterr()
    assert await asyncio.to_thread(main, [*cli, "status", gid]) == 0
    out = capsys.readouterr().out
    assert "Autoscaling" in out and "concurrent_requests target 4" in out and "Window" in out
    rc = await asyncio.to_thread(main, [*cli, "policy", gid, "-cooldown", "5",
                                        "-metric", "cpu", "-target", "1"])
    assert rc == 1 and "cooldown_seconds" in capsys.readouterr().err


async def test_engine_metrics_from_heartbeats_drive_the_decision(admin, bridge) -> None:
    from pathlib import Path

    from bridge.agents.client import AgentClient
    from bridge.crypto import SecretBox
    from bridge.services.policy_loop import PolicyLoop
    from bridge.settings import BridgeSettings
    from bridge.storage.db import Database
    from tests.support.bridge_helpers import heartbeat, unique
    from tests.support.pg import TEST_SECRET_KEY

    gid = await created(admin)
    await admin.put(f"/task-groups/{gid}/scale-policy", json={
        **POLICY, "metric": "vllm_pending_requests", "target_value": 4})
    node_id = unique("node")
    task_id = bridge.sql("UPDATE tasks SET status = 'running', node_id = %s WHERE group_id = %s"
                         " RETURNING id", (node_id, gid))[0][0]
    bridge.sql("UPDATE task_groups SET status = 'running' WHERE id = %s", (gid,))
    r = await admin.post("/users", json={"name": unique("agent"), "role": "agent"})
    db = Database(bridge.db_url, max_size=2)
    await db.open()
    agents = AgentClient()
    loop = PolicyLoop(db, None, agents, SecretBox(TEST_SECRET_KEY),
                      BridgeSettings(home=Path("nonexistent")))

    async def decision_after(reading: dict[str, Any]) -> str:
        async with bridge.client(r.json()["token"]["token"]) as agent:
            beat = await agent.post("/agent/heartbeat", json=heartbeat(
                node_id, engine_metrics={task_id: reading}))
            assert beat.status_code == 200, beat.text
        await loop.round()
        return str((await admin.get(f"/task-groups/{gid}")).json()["policy"]["decision"])

    try:
        busy = await decision_after({"metrics": {"waiting": 9.0, "running": 3.0}, "at": 1.0})
        assert busy.startswith("not scaled yet: 9 requests waiting in the engine per replica"
                               " > target 4"), busy
        gone = await decision_after({"missing": "the engine serves no /metrics", "at": 1.0})
        assert f"vllm_pending_requests is missing ({task_id}: the engine serves no /metrics)" \
            in gone, gone
    finally:
        await agents.close()
        await db.close()
