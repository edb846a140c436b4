"""Ordinary bad input never makes the REST API answer 500: explicit nulls, NUL characters in
query values and stored strings, unsupported methods on paths with parameters, and
database refusals all come back as 4xx in the usual error shape."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.bridge_helpers import error_of, seed_example, unique

NUL = "a\u0000b"


@pytest.fixture
async def route(admin: httpx.AsyncClient) -> dict[str, Any]:
    group = (await admin.post("/task-groups", json=seed_example())).json()
    r = await admin.post("/model-routes", json={"model_name": unique("m"),
                                                "task_group_id": group["id"]})
    assert r.status_code == 201, r.text
    return {"group": group, "route": r.json()}


def _check(r: httpx.Response, *statuses: int) -> None:
    assert r.status_code in statuses, (r.request.method, str(r.request.url), r.text)
    if r.status_code >= 400 and r.request.method not in ("HEAD", "OPTIONS"):
        err = error_of(r)
        assert err["code"] and err["message"] and isinstance(err["details"], dict)


@pytest.mark.parametrize("field", ["weight", "priority", "version", "status",
                                   "upstream_url"])
async def test_explicit_null_in_route_update_is_422(admin, route, field) -> None:
    r = await admin.put(f"/model-routes/{route['route']['id']}", json={field: None})
    _check(r, 422)
    assert field in r.text
    kept = (await admin.get(f"/model-routes/{route['route']['id']}")).json()
    assert kept[field] == route["route"][field]


@pytest.mark.parametrize("path,param", [
    ("/task-groups", "name"), ("/tasks", "status"), ("/tasks", "group_id"),
    ("/audit", "object_id"), ("/audit", "action"), ("/model-routes", "model_name"),
    ("/usage", "model"), ("/models", "name"), ("/nodes", "status")])
async def test_nul_in_query_values_is_not_500(admin, path, param) -> None:
    r = await admin.get(path, params={param: NUL})
    _check(r, 200, 400, 422)


async def test_nul_in_stored_strings_is_422(admin, route, bridge) -> None:
    endpoint = route["group"]["endpoint"]
    _check(await admin.post(f"/endpoints/{endpoint}/api-keys", json={"name": NUL}), 422)
    users = (await admin.get("/users")).json()
    _check(await admin.post(f"/users/{users[0]['id']}/tokens", json={"name": NUL}), 422)
    _check(await admin.post("/users", json={"name": unique("u"), "role": "viewer"}), 201)
    _check(await admin.put(f"/model-routes/{route['route']['id']}",
                           json={"version": "v\u0000"}), 422)
    _check(await admin.post("/task-groups", json=seed_example(command=NUL)), 422)


async def test_nul_in_agent_reports_is_422(admin) -> None:
    body = {"node_id": unique("n"), "name": NUL, "gpus": [], "facts": {"k": NUL}}
    _check(await admin.post("/agent/heartbeat", json=body), 400, 422)
    group = (await admin.post("/task-groups", json=seed_example())).json()
    task = group["tasks"][0]["id"]
    r = await admin.post(f"/agent/tasks/{task}/state",
                         json={"state": "failed", "reason": NUL})
    _check(r, 404, 409, 422)


@pytest.mark.parametrize("method", ["PATCH", "TRACE", "PUT", "DELETE"])
@pytest.mark.parametrize("path", ["/task-groups/x", "/tasks/x", "/model-routes/x",
                                  "/endpoints/x/api-keys", "/nodes/x"])
async def test_unsupported_method_is_405_with_allow(bridge, method, path) -> None:
    async with bridge.client() as anonymous:  # the router answers before authentication
        r = await anonymous.request(method, path)
    if r.status_code == 401:  # the method is served here: it needs a token
        return
    _check(r, 405)
    assert "Allow" in r.headers and "OPTIONS" in r.headers["Allow"]
    assert method not in r.headers["Allow"].split(", ")
    assert error_of(r)["code"] == "method_not_allowed"


async def test_cors_preflight_answers_allow(bridge) -> None:
    async with bridge.client() as anonymous:
        r = await anonymous.options("/task-groups/x", headers={
            "Origin": "http://elsewhere.example", "Access-Control-Request-Method": "DELETE"})
    assert r.status_code == 204, r.text
    assert set(r.headers["Allow"].split(", ")) >= {"GET", "DELETE", "OPTIONS"}
    assert "access-control-allow-origin" not in r.headers  # no grant to other origins


async def test_database_refusals_are_client_errors(admin, route) -> None:
    # numbers past what the column holds, reaching the database through a query value
    _check(await admin.get("/audit", params={"since": "99999-01-01T00:00:00Z"}), 200, 422)
    _check(await admin.get("/usage", params={"from": "0000-01-01"}), 200, 422)
