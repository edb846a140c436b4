"""POST/GET/DELETE /api/v1/task-groups and /api/v1/tasks against real PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib

from tests.support.bridge_helpers import error_of, seed_example, unique

ROW_TABLES = ("task_groups", "tasks", "inference_endpoints", "model_routes", "api_keys")


def rows_for_group(bridge, name: str) -> dict[str, int]:
    """How many rows every table holds for the group of this name."""
    gid = bridge.sql("SELECT id FROM task_groups WHERE name = %s", (name,))
    counts = {"task_groups": len(gid)}
    if not gid:
        ep = bridge.sql("SELECT count(*) FROM inference_endpoints WHERE name = %s", (name,))
        counts.update({"inference_endpoints": ep[0][0]})
        counts.update({"model_routes": bridge.sql(
            "SELECT count(*) FROM model_routes WHERE model_name = %s", (name,))[0][0]})
        counts.update({"audit": bridge.sql(
            "SELECT count(*) FROM audit_log WHERE details->>'name' = %s", (name,))[0][0]})
        return counts
    g = gid[0][0]
    for table, col in (("tasks", "group_id"), ("inference_endpoints", "task_group_id"),
                       ("model_routes", "task_group_id")):
        counts[table] = bridge.sql(f"SELECT count(*) FROM {table} WHERE {col} = %s", (g,))[0][0]
    counts["api_keys"] = bridge.sql(
        "SELECT count(*) FROM api_keys k JOIN inference_endpoints e ON e.id = k.endpoint_id"
        " WHERE e.task_group_id = %s", (g,))[0][0]
    counts["audit"] = bridge.sql(
        "SELECT count(*) FROM audit_log WHERE object_id = %s", (g,))[0][0]
    return counts


class TestCreate:
    async def test_seed_example_creates_all_eight_steps(self, admin, bridge) -> None:
        body = seed_example()
        r = await admin.post("/task-groups", json=body)
        assert r.status_code == 201, r.text
        g = r.json()
        assert g["name"] == body["name"] and g["status"] == "pending"
        assert (g["parallelism"], g["world_size"], g["node_count"]) == ("none", 1, 1)
        assert g["engine"] == "vllm"  # recognised from the image
        assert g["idle_timeout_minutes"] == 30 and g["created_at"]
        assert len(g["tasks"]) == 1 and g["tasks"][0]["rank"] == 0
        assert g["tasks"][0]["id"].endswith(f"-r0-{g['id']}")
        assert g["route"]["model_name"] == body["name"]
        assert (g["route"]["weight"], g["route"]["priority"], g["route"]["version"]) == (
            100, 0, "v1")
        assert g["inference_endpoint"]["id"] == g["endpoint"]
        assert g["inference_endpoint"]["port"] == 8000
        assert g["inference_endpoint"]["health_check"] == {
            "type": "http", "path": "/health", "interval_seconds": 10, "timeout_seconds": 3,
            "unhealthy_threshold": 3}
        key = g["api_key"]["key"]
        assert key.startswith("sk-") and g["api_key"]["prefix"] == key[:11]
        assert rows_for_group(bridge, body["name"]) == {
            "task_groups": 1, "tasks": 1, "inference_endpoints": 1, "model_routes": 1,
            "api_keys": 1, "audit": 1}

        # The key is stored only as its SHA-256 and never shown again.
        stored = bridge.sql("SELECT key_hash, key_prefix FROM api_keys WHERE endpoint_id = %s",
                            (g["endpoint"],))
        assert stored == [(hashlib.sha256(key.encode()).hexdigest(), key[:11])]
        assert not bridge.sql("SELECT 1 FROM api_keys WHERE key_hash = %s OR key_prefix = %s",
                              (key, key))
        for path in (f"/task-groups/{g['id']}", "/task-groups", "/audit",
                     f"/endpoints/{g['endpoint']}/api-keys"):
            text = (await admin.get(path)).text
            assert key not in text, path

        audit = (await admin.get("/audit", params={"object_id": g["id"]})).json()["items"]
        assert [(e["action"], e["actor_name"]) for e in audit] == [("task_group.create", "admin")]
        assert audit[0]["details"]["api_key"] == g["api_key"]["id"]

    async def test_get_returns_what_was_created(self, admin) -> None:
        created = (await admin.post("/task-groups", json=seed_example())).json()
        got = (await admin.get(f"/task-groups/{created['id']}")).json()
        for field in ("id", "name", "status", "tasks", "endpoint", "health_check", "ports",
                      "created_at"):
            assert got[field] == created[field], field
        assert "api_key" not in got

    async def test_tensor_parallel_is_one_task_holding_all_gpus(self, admin) -> None:
        body = seed_example(parallelism="tensor_parallel", world_size=4, gpu_required=4)
        g = (await admin.post("/task-groups", json=body)).json()
        assert (g["node_count"], len(g["tasks"]), g["tasks"][0]["gpu_required"]) == (1, 1, 4)

    async def test_split_makes_one_gpu_replicas(self, admin) -> None:
        body = seed_example(parallelism="split", world_size=3)
        g = (await admin.post("/task-groups", json=body)).json()
        assert [t["rank"] for t in g["tasks"]] == [0, 1, 2]
        assert {t["gpu_required"] for t in g["tasks"]} == {1}
        assert len({t["id"] for t in g["tasks"]}) == 3

    async def test_data_parallel_spreads_over_nodes(self, admin) -> None:
        body = seed_example(parallelism="data_parallel", world_size=12, gpu_required=1)
        g = (await admin.post("/task-groups", json=body)).json()
        assert (g["node_count"], len(g["tasks"])) == (2, 12)

    async def test_cpu_only_llamacpp_is_accepted(self, admin) -> None:
        body = seed_example(image="ghcr.io/ggml-org/llama.cpp:server", gpu_required=0,
                            model_path="/models/smollm2.gguf")
        r = await admin.post("/task-groups", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["engine"] == "llamacpp"

    async def test_cpu_only_vllm_is_refused(self, admin) -> None:
        r = await admin.post("/task-groups", json=seed_example(gpu_required=0))
        assert r.status_code == 422
        assert error_of(r)["details"]["field"] == "gpu_required"

    async def test_without_api_no_route_endpoint_or_key(self, admin, bridge) -> None:
        body = seed_example(enable_api=False)
        g = (await admin.post("/task-groups", json=body)).json()
        assert g["endpoint"] is None and g["api_key"] is None and g["route"] is None
        assert rows_for_group(bridge, body["name"]) == {
            "task_groups": 1, "tasks": 1, "inference_endpoints": 0, "model_routes": 0,
            "api_keys": 0, "audit": 1}

    async def test_canary_beside_v1_needs_its_own_version(self, admin) -> None:
        model = unique("model")
        v1 = await admin.post("/task-groups", json=seed_example(model_name=model))
        assert v1.status_code == 201
        clash = await admin.post("/task-groups", json=seed_example(model_name=model))
        assert clash.status_code == 409
        assert error_of(clash)["details"]["field"] == "route.version"
        canary = await admin.post("/task-groups", json=seed_example(
            model_name=model, route={"weight": 20, "version": "canary"}))
        assert canary.status_code == 201, canary.text
        routes = (await admin.get("/model-routes", params={"model_name": model})).json()
        assert sorted((r["version"], r["weight"]) for r in routes) == [("canary", 20), ("v1", 100)]


class TestAtomicity:
    async def test_failure_at_step_7_leaves_nothing(self, admin, bridge) -> None:
        """A real database error while writing the API key (step 7) rolls back steps 3-6."""
        bridge.sql("""
            CREATE OR REPLACE FUNCTION hf_test_refuse_key() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'injected failure at step 7'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER hf_test_refuse_key BEFORE INSERT ON api_keys
                FOR EACH ROW EXECUTE FUNCTION hf_test_refuse_key();
        """)
        body = seed_example()
        try:
            r = await admin.post("/task-groups", json=body)
        finally:
            bridge.sql("DROP TRIGGER hf_test_refuse_key ON api_keys;"
                       " DROP FUNCTION hf_test_refuse_key();")
        assert r.status_code == 500
        err = error_of(r)
        assert err["code"] == "internal_error" and "injected" not in err["message"]
        assert err["request_id"] == r.headers["x-request-id"]
        assert rows_for_group(bridge, body["name"]) == {
            "task_groups": 0, "inference_endpoints": 0, "model_routes": 0, "audit": 0}
        assert bridge.sql("SELECT count(*) FROM tasks WHERE model_path = %s AND group_id NOT IN"
                          " (SELECT id FROM task_groups)", (body["model_path"],)) == [(0,)]
        # ...and the same request succeeds once the fault is gone.
        again = await admin.post("/task-groups", json=body)
        assert again.status_code == 201, again.text

    async def test_two_concurrent_creates_of_one_name(self, admin, bridge) -> None:
        body = seed_example()
        a, b = await asyncio.gather(admin.post("/task-groups", json=body),
                                    admin.post("/task-groups", json=body))
        assert sorted((a.status_code, b.status_code)) == [201, 409]
        loser = a if a.status_code == 409 else b
        assert error_of(loser)["code"] == "name_taken"
        assert rows_for_group(bridge, body["name"])["tasks"] == 1
        assert rows_for_group(bridge, body["name"])["api_keys"] == 1

    async def test_many_concurrent_creates_one_winner(self, admin, bridge) -> None:
        body = seed_example()
        results = await asyncio.gather(*(admin.post("/task-groups", json=body) for _ in range(8)))
        assert sorted(r.status_code for r in results) == [201] + [409] * 7
        assert rows_for_group(bridge, body["name"])["task_groups"] == 1


class TestReadAndDelete:
    async def test_list_filters_and_pagination(self, admin) -> None:
        tag = unique("page")
        made = []
        for i in range(5):
            made.append((await admin.post("/task-groups",
                                          json=seed_example(name=f"{tag}-{i}"))).json()["id"])
        p1 = (await admin.get("/task-groups", params={"name": tag, "limit": 2})).json()
        p2 = (await admin.get("/task-groups", params={"name": tag, "limit": 2,
                                                      "offset": 2})).json()
        p3 = (await admin.get("/task-groups", params={"name": tag, "limit": 2,
                                                      "offset": 4})).json()
        assert p1["total"] == p2["total"] == p3["total"] == 5
        seen = [g["id"] for g in p1["items"] + p2["items"] + p3["items"]]
        assert sorted(seen) == sorted(made) and len(seen) == 5
        assert seen == list(reversed(made))  # newest first
        assert all(len(g["tasks"]) == 1 for g in p1["items"])
        only_failed = (await admin.get("/task-groups", params={"name": tag,
                                                               "status": "failed"})).json()
        assert only_failed["total"] == 0

    async def test_tasks_filters(self, admin, bridge) -> None:
        g = (await admin.post("/task-groups", json=seed_example(parallelism="split",
                                                                world_size=3))).json()
        tid = g["tasks"][1]["id"]
        bridge.sql("UPDATE tasks SET node_id = 'node-a', status = 'scheduled' WHERE id = %s",
                   (tid,))
        by_group = (await admin.get("/tasks", params={"group_id": g["id"]})).json()
        assert by_group["total"] == 3
        by_node = (await admin.get("/tasks", params={"node_id": "node-a"})).json()
        assert [t["id"] for t in by_node["items"]] == [tid]
        both = (await admin.get("/tasks", params={"group_id": g["id"],
                                                  "status": "pending"})).json()
        assert both["total"] == 2
        one = (await admin.get(f"/tasks/{tid}")).json()
        assert (one["node_id"], one["status"], one["rank"]) == ("node-a", "scheduled", 1)

    async def test_unknown_ids_are_404(self, admin) -> None:
        for path in ("/task-groups/tg-1-abcd", "/tasks/task-x"):
            r = await admin.get(path)
            assert r.status_code == 404 and error_of(r)["code"] == "not_found"
        r = await admin.delete("/task-groups/tg-1-abcd")
        assert r.status_code == 404

    async def test_delete_pending_removes_everything_it_owns(self, admin, bridge) -> None:
        body = seed_example(parallelism="split", world_size=2)
        g = (await admin.post("/task-groups", json=body)).json()
        await admin.post(f"/endpoints/{g['endpoint']}/api-keys", json={"name": "second"})
        r = await admin.delete(f"/task-groups/{g['id']}")
        assert r.status_code == 200, r.text
        for table, col in (("tasks", "group_id"), ("inference_endpoints", "task_group_id"),
                           ("model_routes", "task_group_id")):
            assert bridge.sql(f"SELECT count(*) FROM {table} WHERE {col} = %s",
                              (g["id"],)) == [(0,)]
        assert bridge.sql("SELECT count(*) FROM api_keys WHERE endpoint_id = %s",
                          (g["endpoint"],)) == [(0,)]
        assert (await admin.get(f"/task-groups/{g['id']}")).status_code == 404
        trail = (await admin.get("/audit", params={"object_id": g["id"]})).json()["items"]
        assert [e["action"] for e in trail] == ["task_group.delete", "task_group.create"]
        # the name is free again
        assert (await admin.post("/task-groups", json=body)).status_code == 201

    async def test_delete_refused_while_running(self, admin, bridge) -> None:
        g = (await admin.post("/task-groups", json=seed_example())).json()
        for status in ("running", "sleeping"):
            bridge.sql("UPDATE task_groups SET status = %s WHERE id = %s", (status, g["id"]))
            r = await admin.delete(f"/task-groups/{g['id']}")
            assert r.status_code == 409, status
            err = error_of(r)
            assert err["code"] == "invalid_state" and err["details"]["status"] == status
            assert "stop" in err["message"].lower()
        assert (await admin.get(f"/task-groups/{g['id']}")).status_code == 200
        for status in ("scheduling", "completed", "failed"):
            g2 = (await admin.post("/task-groups", json=seed_example())).json()
            bridge.sql("UPDATE task_groups SET status = %s WHERE id = %s", (status, g2["id"]))
            assert (await admin.delete(f"/task-groups/{g2['id']}")).status_code == 200

    async def test_database_refuses_unknown_status(self, bridge) -> None:
        import psycopg
        import pytest

        with pytest.raises(psycopg.errors.CheckViolation):
            bridge.sql("UPDATE task_groups SET status = 'exploded'")
        with pytest.raises(psycopg.errors.CheckViolation):
            bridge.sql("UPDATE tasks SET status = 'exploded'")
