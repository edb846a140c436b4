"""Bearer tokens and roles on every /api/v1 call."""

from __future__ import annotations

import hashlib

import pytest

from tests.support.bridge_helpers import error_of, seed_example, unique


async def make_user(admin, role: str) -> tuple[str, str]:
    r = await admin.post("/users", json={"name": unique(role), "role": role})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["token"]["token"]


class TestAuthentication:
    @pytest.mark.parametrize("headers", [
        {}, {"Authorization": "Bearer"}, {"Authorization": "Bearer hft_nope"},
        {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "hft_x"},
    ])
    async def test_missing_or_bad_token_is_401(self, bridge, headers) -> None:
        async with bridge.client() as anon:
            for method, path in (("GET", "/task-groups"), ("POST", "/task-groups"),
                                 ("GET", "/audit")):
                r = await anon.request(method, path, headers=headers, json=seed_example())
                assert r.status_code == 401, (method, path)
                assert error_of(r)["code"] == "unauthorized"

    async def test_openapi_document_needs_no_token(self, bridge) -> None:
        # Documentation, and the web UI reads its validation rules before anyone signs in.
        async with bridge.client() as anon:
            r = await anon.get("/openapi.json")
        assert r.status_code == 200
        op = r.json()["paths"]["/api/v1/openapi.json"]["get"]
        assert op["security"] == [] and "401" not in op["responses"]

    async def test_unauthenticated_write_writes_nothing(self, bridge) -> None:
        body = seed_example()
        async with bridge.client("hft_wrong") as anon:
            await anon.post("/task-groups", json=body)
        assert not bridge.sql("SELECT 1 FROM task_groups WHERE name = %s", (body["name"],))

    async def test_tokens_are_stored_hashed(self, admin, bridge) -> None:
        uid, token = await make_user(admin, "viewer")
        rows = bridge.sql("SELECT token_hash, token_prefix FROM api_tokens WHERE user_id = %s",
                          (uid,))
        assert rows == [(hashlib.sha256(token.encode()).hexdigest(), token[:11])]
        admin_hash = hashlib.sha256(bridge.admin_token.encode()).hexdigest()
        assert bridge.sql("SELECT count(*) FROM api_tokens WHERE token_hash = %s",
                          (admin_hash,)) == [(1,)]

    async def test_revoked_token_stops_working(self, admin, bridge) -> None:
        uid, token = await make_user(admin, "operator")
        async with bridge.client(token) as op:
            assert (await op.get("/whoami")).status_code == 200
            tid = bridge.sql("SELECT id FROM api_tokens WHERE user_id = %s", (uid,))[0][0]
            assert (await admin.delete(f"/tokens/{tid}")).status_code == 204
            r = await op.get("/whoami")
            assert r.status_code == 401
        assert (await admin.delete(f"/tokens/{tid}")).status_code == 404

    async def test_second_token_for_a_user(self, admin, bridge) -> None:
        uid, _ = await make_user(admin, "viewer")
        r = await admin.post(f"/users/{uid}/tokens", json={"name": "ci"})
        assert r.status_code == 201
        async with bridge.client(r.json()["token"]) as second:
            me = (await second.get("/whoami")).json()
        assert (me["user_id"], me["role"]) == (uid, "viewer")


class TestRoles:
    async def test_viewer_reads_but_cannot_write(self, admin, bridge) -> None:
        g = (await admin.post("/task-groups", json=seed_example())).json()
        _, token = await make_user(admin, "viewer")
        async with bridge.client(token) as viewer:
            for path in ("/task-groups", f"/task-groups/{g['id']}", "/tasks", "/model-routes",
                         f"/endpoints/{g['endpoint']}/api-keys", "/audit", "/openapi.json"):
                assert (await viewer.get(path)).status_code == 200, path
            body = seed_example()
            writes = [
                ("POST", "/task-groups", body),
                ("DELETE", f"/task-groups/{g['id']}", None),
                ("POST", "/model-routes", {"model_name": unique("m"), "task_group_id": g["id"]}),
                ("PUT", f"/model-routes/{g['route']['id']}", {"weight": 1}),
                ("DELETE", f"/model-routes/{g['route']['id']}", None),
                ("POST", f"/endpoints/{g['endpoint']}/api-keys", {"name": "x"}),
                ("DELETE", f"/endpoints/{g['endpoint']}/api-keys/{g['api_key']['id']}", None),
                ("POST", "/users", {"name": unique("u")}),
            ]
            for method, path, payload in writes:
                r = await viewer.request(method, path, json=payload)
                assert r.status_code == 403, (method, path, r.text)
                assert error_of(r)["code"] == "forbidden"
        assert not bridge.sql("SELECT 1 FROM task_groups WHERE name = %s", (body["name"],))
        assert (await admin.get(f"/task-groups/{g['id']}")).status_code == 200

    async def test_operator_writes_services_but_not_users(self, admin, bridge) -> None:
        _, token = await make_user(admin, "operator")
        async with bridge.client(token) as op:
            r = await op.post("/task-groups", json=seed_example())
            assert r.status_code == 201
            assert r.json()["created_by"] != bridge.admin_token
            assert (await op.post("/users", json={"name": unique("u")})).status_code == 403
            assert (await op.get("/users")).status_code == 403

    async def test_audit_names_the_actor(self, admin, bridge) -> None:
        _, token = await make_user(admin, "operator")
        async with bridge.client(token) as op:
            g = (await op.post("/task-groups", json=seed_example())).json()
            me = (await op.get("/whoami")).json()
        trail = (await admin.get("/audit", params={"object_id": g["id"]})).json()["items"]
        assert trail[0]["actor_name"] == me["name"] and trail[0]["actor_id"] == me["user_id"]

    async def test_duplicate_user_name(self, admin) -> None:
        name = unique("dup")
        assert (await admin.post("/users", json={"name": name})).status_code == 201
        r = await admin.post("/users", json={"name": name})
        assert r.status_code == 409 and error_of(r)["code"] == "name_taken"
