"""PUT .../update, GET .../versions, POST .../versions/{n}/revert and .../start against real
PostgreSQL (placement off: the rollout's own steps are covered by test_rollout_decide and
the real-process tests in tests/integration/test_local_updates.py)."""

from __future__ import annotations

from tests.support.bridge_helpers import error_of, seed_example


async def _running(admin, bridge, **over) -> dict:
    created = (await admin.post("/task-groups", json=seed_example(**over))).json()
    bridge.sql("UPDATE tasks SET status = 'running' WHERE group_id = %s", (created["id"],))
    bridge.sql("UPDATE task_groups SET status = 'running' WHERE id = %s", (created["id"],))
    return created


def _finish_rollout(bridge, gid: str) -> None:
    bridge.sql("UPDATE task_groups SET rolling_update_state = 'completed',"
               " rollout = rollout || '{\"done\": true}'::jsonb WHERE id = %s", (gid,))


async def test_an_update_is_a_new_version_with_what_changed(admin, bridge) -> None:
    g = await _running(admin, bridge)
    assert g["version"] == 1 and g["rolling_update_state"] == "idle"
    r = await admin.put(f"/task-groups/{g['id']}/update", json={
        "image": "vllm/vllm-openai:v0.9.0", "engine_args": ["--max-model-len", "8192"],
        "env": {"VLLM_LOGGING_LEVEL": "DEBUG"}, "max_parallel": 2})
    assert r.status_code == 200, r.text
    u = r.json()
    assert (u["version"], u["rolling_update_state"]) == (2, "rolling")
    assert u["image"] == "vllm/vllm-openai:v0.9.0" and u["engine_args"] == ["--max-model-len",
                                                                            "8192"]
    assert u["update_progress"] == "0 of 1 replicas on version 2"
    assert u["rollout"]["strategy"] == "rolling" and u["rollout"]["max_parallel"] == 2
    assert u["status_reason"].startswith("rolling to version 2")
    assert u["tasks"][0]["version"] == 1  # the running replica is not touched by the API

    versions = (await admin.get(f"/task-groups/{g['id']}/versions")).json()
    assert versions["current"] == 2
    assert [(v["version"], v["strategy"]) for v in versions["items"]] == [
        (1, "initial"), (2, "rolling")]
    assert versions["items"][0]["spec"]["image"] == "vllm/vllm-openai:latest"
    assert versions["items"][1]["changes"] == {
        "image": {"from": "vllm/vllm-openai:latest", "to": "vllm/vllm-openai:v0.9.0"},
        "engine_args": {"from": [], "to": ["--max-model-len", "8192"]},
        "env": {"from": {}, "to": {"VLLM_LOGGING_LEVEL": "DEBUG"}}}
    audit = (await admin.get("/audit", params={"object_id": g["id"],
                                               "action": "task_group.update"})).json()
    assert audit["items"][0]["details"]["version"] == 2


async def test_a_second_update_waits_for_the_first_and_scale_too(admin, bridge) -> None:
    g = await _running(admin, bridge)
    assert (await admin.put(f"/task-groups/{g['id']}/update",
                            json={"image": "vllm/vllm-openai:v1"})).status_code == 200
    r = await admin.put(f"/task-groups/{g['id']}/update", json={"image": "vllm/vllm-openai:v2"})
    assert r.status_code == 409
    assert "rolling out version 2" in error_of(r)["message"]
    r = await admin.put(f"/task-groups/{g['id']}/scale", json={"replicas": 2})
    assert r.status_code == 409 and "rolling out" in error_of(r)["message"]
    _finish_rollout(bridge, g["id"])
    r = await admin.put(f"/task-groups/{g['id']}/update", json={"image": "vllm/vllm-openai:v2"})
    assert r.status_code == 200 and r.json()["version"] == 3


async def test_nothing_to_change_and_bad_bodies_are_refused(admin, bridge) -> None:
    g = await _running(admin, bridge)
    r = await admin.put(f"/task-groups/{g['id']}/update", json={"image": g["image"]})
    assert r.status_code == 422 and "nothing changes" in error_of(r)["message"]
    for body in ({"strategy": "blue-green"}, {"max_parallel": 0}, {"colour": "red"},
                 {"env": {"1BAD": "x"}}, {"model_path": "relative/path"}):
        r = await admin.put(f"/task-groups/{g['id']}/update", json=body)
        assert r.status_code == 422, (body, r.text)
    assert (await admin.put("/task-groups/tg-nope/update",
                            json={"image": "a/b:c"})).status_code == 404
    assert (await admin.get(f"/task-groups/{g['id']}/versions")).json()["current"] == 1


async def test_revert_rolls_back_to_an_old_spec_as_a_new_version(admin, bridge) -> None:
    g = await _running(admin, bridge)
    await admin.put(f"/task-groups/{g['id']}/update", json={"image": "vllm/vllm-openai:v1",
                                                            "strategy": "recreate"})
    _finish_rollout(bridge, g["id"])
    r = await admin.post(f"/task-groups/{g['id']}/versions/1/revert")
    assert r.status_code == 200, r.text
    assert (r.json()["version"], r.json()["image"]) == (3, "vllm/vllm-openai:latest")
    items = (await admin.get(f"/task-groups/{g['id']}/versions")).json()["items"]
    assert [(v["version"], v["strategy"], v["note"]) for v in items] == [
        (1, "initial", ""), (2, "recreate", ""), (3, "revert", "revert to version 1")]
    _finish_rollout(bridge, g["id"])
    r = await admin.post(f"/task-groups/{g['id']}/versions/3/revert")
    assert r.status_code == 422 and "nothing to revert" in error_of(r)["message"]
    assert (await admin.post(f"/task-groups/{g['id']}/versions/9/revert")).status_code == 404


async def test_an_update_of_a_stopped_service_applies_at_its_next_start(admin, bridge) -> None:
    g = await _running(admin, bridge)
    bridge.sql("UPDATE tasks SET status = 'completed' WHERE group_id = %s", (g["id"],))
    bridge.sql("UPDATE task_groups SET status = 'completed' WHERE id = %s", (g["id"],))
    r = await admin.put(f"/task-groups/{g['id']}/update", json={"image": "vllm/vllm-openai:v1"})
    assert r.status_code == 200 and r.json()["rolling_update_state"] == "completed"
    r = await admin.post(f"/task-groups/{g['id']}/start")
    assert r.status_code == 200, r.text
    started = r.json()
    assert started["status"] in ("pending", "scheduling")
    assert [t["status"] for t in started["tasks"]] == ["pending"]
    r = await admin.post(f"/task-groups/{g['id']}/start")
    assert r.status_code == 409 and "start needs" in error_of(r)["message"]


async def test_a_rollout_in_progress_can_be_abandoned_once(admin, bridge) -> None:
    g = await _running(admin, bridge)
    r = await admin.post(f"/task-groups/{g['id']}/rollout/fail")
    assert r.status_code == 409 and "no rollout in progress" in error_of(r)["message"]
    await admin.put(f"/task-groups/{g['id']}/update", json={"image": "vllm/vllm-openai:v1"})
    r = await admin.post(f"/task-groups/{g['id']}/rollout/fail")
    assert r.status_code == 200, r.text
    assert r.json()["rollout"]["abandoned"] is True
    audit = (await admin.get("/audit", params={"object_id": g["id"],
                                               "action": "task_group.update.abandon"})).json()
    assert audit["total"] == 1


async def test_canaries_wait_for_a_promotion(admin, bridge) -> None:
    g = await _running(admin, bridge)
    r = await admin.post(f"/task-groups/{g['id']}/rollout/promote")
    assert r.status_code == 409 and "no canary" in error_of(r)["message"]
    r = await admin.put(f"/task-groups/{g['id']}/update", json={
        "image": "vllm/vllm-openai:v1", "canary": 1, "canary_percent": 20})
    assert r.status_code == 200, r.text
    assert (r.json()["rollout"]["canary"], r.json()["rollout"]["canary_percent"]) == (1, 20)
    for body in ({"image": "a/b:c", "canary": -1}, {"image": "a/b:c", "canary_percent": 100}):
        assert (await admin.put(f"/task-groups/{g['id']}/update", json=body)).status_code == 422
    r = await admin.post(f"/task-groups/{g['id']}/rollout/promote")
    assert r.status_code == 200 and r.json()["rollout"]["promoted"] is True
    assert "promoted" in r.json()["status_reason"]
