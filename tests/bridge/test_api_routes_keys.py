"""Model routes (canary flow) and an endpoint's gateway API keys."""

from __future__ import annotations

import hashlib

from tests.support.bridge_helpers import error_of, seed_example, unique


class TestCanaryFlow:
    async def test_seed_canary_flow(self, admin) -> None:
        model = unique("qwen")
        v1 = (await admin.post("/task-groups", json=seed_example(model_name=model))).json()
        canary_group = (await admin.post("/task-groups", json=seed_example(
            model_name=model, enable_api=False))).json()
        # 2. add a canary at weight 20, priority 0
        r = await admin.post("/model-routes", json={
            "model_name": model, "task_group_id": canary_group["id"], "weight": 20,
            "priority": 0, "version": "canary"})
        assert r.status_code == 201, r.text
        canary = r.json()
        assert canary["engine"] == "vllm" and canary["status"] == "active"
        # 3. v1 to 80
        r = await admin.put(f"/model-routes/{v1['route']['id']}", json={"weight": 80})
        assert r.status_code == 200 and r.json()["weight"] == 80
        routes = (await admin.get("/model-routes", params={"model_name": model})).json()
        assert {r["version"]: r["weight"] for r in routes} == {"v1": 80, "canary": 20}
        # 5. promote: 100 / 0
        await admin.put(f"/model-routes/{v1['route']['id']}", json={"weight": 100})
        await admin.put(f"/model-routes/{canary['id']}", json={"weight": 0})
        routes = (await admin.get("/model-routes", params={"model_name": model})).json()
        assert {r["version"]: r["weight"] for r in routes} == {"v1": 100, "canary": 0}
        trail = (await admin.get("/audit", params={"object_id": canary["id"]})).json()["items"]
        assert [e["action"] for e in trail] == ["model_route.update", "model_route.create"]
        assert trail[0]["details"]["changes"] == {"weight": 0}
        assert trail[0]["details"]["before"] == {"weight": 20}

    async def test_version_unique_per_model(self, admin) -> None:
        model = unique("m")
        g = (await admin.post("/task-groups", json=seed_example(model_name=model))).json()
        r = await admin.post("/model-routes", json={"model_name": model,
                                                    "task_group_id": g["id"], "version": "v1"})
        assert r.status_code == 409 and error_of(r)["details"]["version"] == "v1"
        other = (await admin.post("/model-routes", json={
            "model_name": model, "task_group_id": g["id"], "version": "v2"})).json()
        r = await admin.put(f"/model-routes/{other['id']}", json={"version": "v1"})
        assert r.status_code == 409
        assert (await admin.get(f"/model-routes/{other['id']}")).json()["version"] == "v2"

    async def test_update_rules(self, admin) -> None:
        g = (await admin.post("/task-groups", json=seed_example())).json()
        rid = g["route"]["id"]
        assert (await admin.put(f"/model-routes/{rid}", json={})).status_code == 422
        assert (await admin.put(f"/model-routes/{rid}", json={"weight": 101})).status_code == 422
        assert (await admin.put(f"/model-routes/{rid}",
                                json={"model_name": "x"})).status_code == 422
        r = await admin.put(f"/model-routes/{rid}", json={"algorithm": "least_connections",
                                                          "priority": 2, "status": "inactive"})
        assert r.status_code == 200
        assert (r.json()["algorithm"], r.json()["priority"], r.json()["status"]) == (
            "least_connections", 2, "inactive")
        assert (await admin.put("/model-routes/mr-0000000000000000",
                                json={"weight": 1})).status_code == 404

    async def test_delete_route(self, admin) -> None:
        g = (await admin.post("/task-groups", json=seed_example())).json()
        rid = g["route"]["id"]
        assert (await admin.delete(f"/model-routes/{rid}")).status_code == 200
        assert (await admin.get(f"/model-routes/{rid}")).status_code == 404
        assert (await admin.delete(f"/model-routes/{rid}")).status_code == 404


class TestApiKeys:
    async def test_list_create_revoke(self, admin, bridge) -> None:
        g = (await admin.post("/task-groups", json=seed_example())).json()
        ep = g["endpoint"]
        r = await admin.post(f"/endpoints/{ep}/api-keys", json={"name": "ci"})
        assert r.status_code == 201
        new = r.json()
        assert new["key"].startswith("sk-") and new["prefix"] == new["key"][:11]
        assert bridge.sql("SELECT key_hash FROM api_keys WHERE id = %s", (new["id"],)) == [
            (hashlib.sha256(new["key"].encode()).hexdigest(),)]
        listed = (await admin.get(f"/endpoints/{ep}/api-keys")).json()
        assert [k["name"] for k in listed] == ["default", "ci"]
        assert all("key" not in k for k in listed)
        assert all(k["active"] for k in listed)

        r = await admin.delete(f"/endpoints/{ep}/api-keys/{new['id']}")
        assert r.status_code == 200 and r.json()["active"] is False and r.json()["revoked_at"]
        again = await admin.delete(f"/endpoints/{ep}/api-keys/{new['id']}")
        assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
        trail = (await admin.get("/audit", params={"object_id": new["id"]})).json()["items"]
        assert [e["action"] for e in trail] == ["api_key.revoke", "api_key.create"]

    async def test_default_name_and_unknowns(self, admin) -> None:
        g = (await admin.post("/task-groups", json=seed_example())).json()
        r = await admin.post(f"/endpoints/{g['endpoint']}/api-keys")
        assert r.status_code == 201 and r.json()["name"] == "default"
        r = await admin.get("/endpoints/ep-0000000000000000/api-keys")
        assert r.status_code == 404 and error_of(r)["code"] == "not_found"
        r = await admin.post("/endpoints/ep-0000000000000000/api-keys", json={"name": "x"})
        assert r.status_code == 404
        r = await admin.delete(f"/endpoints/{g['endpoint']}/api-keys/key-0000000000000000")
        assert r.status_code == 404
        r = await admin.post(f"/endpoints/{g['endpoint']}/api-keys", json={"name": ""})
        assert r.status_code == 422


class TestExternalRoutes:
    async def test_external_fallback_route_keeps_its_key_sealed(self, admin, bridge) -> None:
        from bridge.crypto import SecretBox
        from tests.support.pg import TEST_SECRET_KEY

        model = unique("m")
        await admin.post("/task-groups", json=seed_example(model_name=model))
        secret = "sk-provider-" + "z" * 30
        r = await admin.post("/model-routes", json={
            "model_name": model, "upstream_url": "https://api.provider.example/v1",
            "upstream_key": secret, "upstream_model": "gpt-4o-mini", "priority": 9,
            "version": "cloud"})
        assert r.status_code == 201, r.text
        route = r.json()
        assert route["task_group_id"] is None and route["has_upstream_key"] is True
        assert route["upstream_model"] == "gpt-4o-mini" and "upstream_key" not in route
        for path in (f"/model-routes/{route['id']}", "/model-routes", "/audit"):
            assert secret not in (await admin.get(path)).text
        sealed = bridge.sql("SELECT upstream_key_encrypted FROM model_routes WHERE id = %s",
                            (route["id"],))[0][0]
        assert secret not in sealed and SecretBox(TEST_SECRET_KEY).open(sealed) == secret
        r = await admin.put(f"/model-routes/{route['id']}", json={"upstream_key": "sk-new-1"})
        assert r.status_code == 200 and r.json()["has_upstream_key"]
        sealed = bridge.sql("SELECT upstream_key_encrypted FROM model_routes WHERE id = %s",
                            (route["id"],))[0][0]
        assert SecretBox(TEST_SECRET_KEY).open(sealed) == "sk-new-1"
        trail = (await admin.get("/audit", params={"object_id": route["id"]})).json()["items"]
        assert trail[0]["details"]["changes"] == {"upstream_key_encrypted": "(changed)"}

    async def test_exactly_one_target(self, admin) -> None:
        g = (await admin.post("/task-groups", json=seed_example())).json()
        for body in ({"model_name": unique("m")},
                     {"model_name": unique("m"), "task_group_id": g["id"],
                      "upstream_url": "https://x.example/v1"},
                     {"model_name": unique("m"), "task_group_id": g["id"],
                      "upstream_key": "k"},
                     {"model_name": unique("m"), "upstream_url": "ftp://x.example/v1"}):
            r = await admin.post("/model-routes", json=body)
            assert r.status_code == 422, body
        r = await admin.put(f"/model-routes/{g['route']['id']}",
                            json={"upstream_url": "https://x.example/v1"})
        assert r.status_code == 422 and error_of(r)["details"]["field"] == "upstream_url"
