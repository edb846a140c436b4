"""Bad input: the right status, a machine-readable code, a message, and nothing written."""

from __future__ import annotations

import pytest

from tests.support.bridge_helpers import error_of, seed_example, unique

# (what is wrong, body overrides or a raw body, status, code, field named in details)
BAD_BODIES = [
    ("unknown field", {"gpus": 2}, 422, "gpus"),
    ("missing name", {"name": None}, 422, "name"),
    ("name with spaces", {"name": "My Service"}, 422, "name"),
    ("name too long", {"name": "a" * 64}, 422, "name"),
    ("name as number", {"name": 12}, 422, "name"),
    ("missing image", {"image": None}, 422, "image"),
    ("image with a quote", {"image": 'vllm/vllm-openai"; rm -rf /'}, 422, "image"),
    ("missing model_path", {"model_path": None}, 422, "model_path"),
    ("relative model_path", {"model_path": "models/x"}, 422, "model_path"),
    ("dotdot model_path", {"model_path": "/models/../etc"}, 422, "model_path"),
    ("NUL in model_path", {"model_path": "/models/a\u0000b"}, 422, "model_path"),
    ("gpu count as string", {"gpu_required": "1"}, 422, "gpu_required"),
    ("gpu count as float", {"gpu_required": 1.5}, 422, "gpu_required"),
    ("gpu count 65", {"gpu_required": 65}, 422, "gpu_required"),
    ("gpu count negative", {"gpu_required": -1}, 422, "gpu_required"),
    ("unknown gpu type", {"gpu_type": "voodoo"}, 422, "gpu_type"),
    ("unknown engine", {"engine": "tgi"}, 422, "engine"),
    ("unknown parallelism", {"parallelism": "pipeline"}, 422, "parallelism"),
    ("world_size 0", {"parallelism": "split", "world_size": 0}, 422, "world_size"),
    ("split without world_size", {"parallelism": "split"}, 422, "world_size"),
    ("single with world_size 4", {"world_size": 4}, 422, "world_size"),
    ("tp over 8 GPUs", {"parallelism": "tensor_parallel", "world_size": 16}, 422, "world_size"),
    ("ports with letters", {"ports": "80a"}, 422, "ports"),
    ("ports three parts", {"ports": "1:2:3"}, 422, "ports"),
    ("ports out of range", {"ports": "70000"}, 422, "ports"),
    ("ports zero", {"ports": "0:8000"}, 422, "ports"),
    ("ports as int", {"ports": 8000}, 422, "ports"),
    ("negative timeout", {"timeout_seconds": -1}, 422, "timeout_seconds"),
    ("negative idle timeout", {"idle_timeout_minutes": -5}, 422, "idle_timeout_minutes"),
    ("enable_api as 1", {"enable_api": 1}, 422, "enable_api"),
    ("route weight 101", {"route": {"weight": 101}}, 422, "route.weight"),
    ("route weight -1", {"route": {"weight": -1}}, 422, "route.weight"),
    ("route priority -1", {"route": {"priority": -1}}, 422, "route.priority"),
    ("route algorithm", {"route": {"algorithm": "fastest"}}, 422, "route.algorithm"),
    ("route unknown key", {"route": {"weigth": 10}}, 422, "route.weigth"),
    ("route version spaces", {"route": {"version": "v 1"}}, 422, "route.version"),
    ("unknown qos", {"qos": "platinum"}, 422, "qos"),
    ("negative vram", {"estimated_gpu_memory_mb": -1}, 422, "estimated_gpu_memory_mb"),
    ("health path", {"health_check": {"path": "health"}}, 422, "health_check.path"),
    ("health type", {"health_check": {"type": "grpc"}}, 422, "health_check.type"),
    ("health interval 0", {"health_check": {"interval_seconds": 0}}, 422,
     "health_check.interval_seconds"),
    ("health timeout > interval", {"health_check": {"interval_seconds": 2,
                                                    "timeout_seconds": 5}}, 422, "health_check"),
    ("scale metric", {"scale_policy": {"metric": "vibes", "target_value": 1}}, 422,
     "scale_policy.metric"),
    ("scale cooldown 10", {"scale_policy": {"metric": "cpu", "target_value": 50,
                                            "cooldown_seconds": 10}}, 422,
     "scale_policy.cooldown_seconds"),
    ("scale target 0", {"scale_policy": {"metric": "cpu", "target_value": 0}}, 422,
     "scale_policy.target_value"),
    ("co_schedule 9 models", {"co_schedule": {"max_models_per_gpu": 9}}, 422,
     "co_schedule.max_models_per_gpu"),
    ("overcommit 2.5", {"co_schedule": {"vram_overcommit_ratio": 2.5}}, 422,
     "co_schedule.vram_overcommit_ratio"),
    ("overcommit 0.5", {"co_schedule": {"vram_overcommit_ratio": 0.5}}, 422,
     "co_schedule.vram_overcommit_ratio"),
    ("window hour 25", {"schedule_window": {"start": "25:00", "end": "06:00"}}, 422,
     "schedule_window.start"),
    ("window zone", {"schedule_window": {"start": "22:00", "end": "06:00",
                                         "timezone": "Mars/Olympus"}}, 422,
     "schedule_window.timezone"),
    ("min replicas 0", {"min_replicas": 0}, 422, "min_replicas"),
    ("max below min", {"min_replicas": 3, "max_replicas": 2}, 422, "(body)"),
    ("auto_scale without policy", {"auto_scale": True}, 422, "(body)"),
]


class TestCreateValidation:
    @pytest.mark.parametrize(("label", "over", "status", "field"), BAD_BODIES,
                             ids=[b[0] for b in BAD_BODIES])
    async def test_bad_field(self, admin, bridge, label, over, status, field) -> None:
        body = seed_example()
        for k, v in over.items():
            if v is None:
                body.pop(k)
            else:
                body[k] = v
        before = bridge.sql("SELECT count(*) FROM task_groups")[0][0]
        r = await admin.post("/task-groups", json=body)
        assert r.status_code == status, r.text
        err = error_of(r)
        assert err["code"] == "validation_failed"
        fields = [f["field"] for f in err["details"].get("fields", [])] or [
            err["details"].get("field")]
        assert field in fields, (fields, err)
        assert bridge.sql("SELECT count(*) FROM task_groups")[0][0] == before

    @pytest.mark.parametrize(("raw", "status", "code"), [
        (b"{not json", 400, "malformed_json"),
        (b"", 400, "malformed_json"),
        (b"[1, 2]", 422, "validation_failed"),
        (b'"a string"', 422, "validation_failed"),
        (b"null", 422, "validation_failed"),
        (b"\xff\xfe", 400, "malformed_json"),
    ])
    async def test_unreadable_bodies(self, admin, raw, status, code) -> None:
        r = await admin.post("/task-groups", content=raw,
                             headers={"content-type": "application/json"})
        assert (r.status_code, error_of(r)["code"]) == (status, code), r.text

    async def test_oversized_body_is_413(self, admin, bridge) -> None:
        body = seed_example(command="x" * 100_000)  # the test server allows 64 KiB
        r = await admin.post("/task-groups", json=body)
        assert r.status_code == 413
        assert error_of(r)["code"] == "payload_too_large"
        assert not bridge.sql("SELECT 1 FROM task_groups WHERE name = %s", (body["name"],))

    async def test_every_problem_is_listed(self, admin) -> None:
        r = await admin.post("/task-groups", json={"name": "X Y", "gpu_required": 99,
                                                   "bogus": 1})
        err = error_of(r)
        fields = {f["field"] for f in err["details"]["fields"]}
        assert {"name", "gpu_required", "bogus", "image", "model_path"} <= fields
        assert "more" in err["message"]


class TestOtherErrors:
    async def test_unknown_path_is_json_404(self, admin) -> None:
        r = await admin.get("/nothing-here")
        assert r.status_code == 404 and error_of(r)["code"] == "not_found"

    async def test_wrong_method_is_json_405(self, admin) -> None:
        r = await admin.patch("/task-groups")
        assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"

    async def test_bad_pagination(self, admin) -> None:
        for params in ({"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"offset": -1},
                       {"limit": "\u00b2"}, {"offset": "\u0663"}):
            r = await admin.get("/task-groups", params=params)
            assert r.status_code == 422 and error_of(r)["code"] == "validation_failed", params

    async def test_request_id_echoed(self, admin) -> None:
        r = await admin.get("/task-groups/tg-0-0000", headers={"x-request-id": "abc-123"})
        assert r.headers["x-request-id"] == "abc-123"
        assert error_of(r)["request_id"] == "abc-123"

    async def test_route_validation(self, admin) -> None:
        g = (await admin.post("/task-groups", json=seed_example())).json()
        cases = [
            ({"model_name": unique("m"), "task_group_id": g["id"], "weight": 101}, 422),
            ({"model_name": unique("m"), "task_group_id": g["id"], "priority": -1}, 422),
            ({"model_name": unique("m"), "task_group_id": g["id"], "algorithm": "x"}, 422),
            ({"model_name": "bad name", "task_group_id": g["id"]}, 422),
            ({"model_name": unique("m"), "task_group_id": "tg-nope"}, 422),
            ({"model_name": unique("m")}, 422),
        ]
        for body, status in cases:
            r = await admin.post("/model-routes", json=body)
            assert r.status_code == status, (body, r.text)
            assert error_of(r)["code"] == "validation_failed"
