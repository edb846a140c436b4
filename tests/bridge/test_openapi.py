"""The OpenAPI document is valid and describes exactly the routes the server serves."""

from __future__ import annotations

from openapi_spec_validator import validate

from tests.support.bridge_helpers import seed_example


async def test_document_is_valid_openapi(admin) -> None:
    doc = (await admin.get("/openapi.json")).json()
    validate(doc)
    assert doc["openapi"].startswith("3.")


async def test_document_matches_served_routes(admin, bridge) -> None:
    from sanic import Sanic

    doc = (await admin.get("/openapi.json")).json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    app = Sanic.get_app("bridge_under_test")
    served = set()
    for route in app.router.routes:
        path = "/" + route.raw_path
        if not path.startswith("/api/v1"):
            continue
        path = path.replace("<", "{").replace(">", "}")
        for method in route.methods:
            if method not in ("HEAD", "OPTIONS"):
                served.add((method, path))
    assert documented == served


async def test_create_schema_is_the_contract(admin) -> None:
    doc = (await admin.get("/openapi.json")).json()
    op = doc["paths"]["/api/v1/task-groups"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    props = set(schema["properties"])
    assert props == {
        "name", "image", "engine", "command", "model_path", "model_name", "parallelism",
        "world_size", "gpu_required", "gpu_type", "ports", "timeout_seconds",
        "idle_timeout_minutes", "enable_api", "route", "qos", "estimated_gpu_memory_mb",
        "health_check", "scale_policy", "co_schedule", "schedule_window", "min_replicas",
        "max_replicas", "auto_scale"}
    assert set(schema["required"]) == {"name", "image", "model_path"}
    assert schema["additionalProperties"] is False
    assert {"201", "400", "401", "403", "409", "413", "422"} <= set(op["responses"])


async def test_responses_follow_their_schema(admin) -> None:
    """A created group validates against the response schema the document publishes."""
    import jsonschema

    doc = (await admin.get("/openapi.json")).json()
    created = (await admin.post("/task-groups", json=seed_example())).json()
    schema = doc["paths"]["/api/v1/task-groups"]["post"]["responses"]["201"]["content"][
        "application/json"]["schema"]
    resolver_doc = {"components": doc["components"], **schema}
    jsonschema.validate(created, resolver_doc)
