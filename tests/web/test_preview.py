"""The create form's jobspec preview: what Nomad would run, with nothing written."""

from __future__ import annotations

import httpx

from tests.support.bridge_helpers import seed_example


async def test_preview_renders_the_job_and_writes_nothing(admin: httpx.AsyncClient,
                                                          bridge) -> None:
    body = seed_example()
    before = bridge.sql("SELECT count(*) FROM task_groups")
    r = await admin.post("/task-groups/jobspec-preview", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert f"({body['name']})" in r.text and "\njob " in r.text
    assert 'device "nvidia/gpu"' in r.text
    assert r.headers["x-heteroflow-engine"] == "vllm"
    assert bridge.sql("SELECT count(*) FROM task_groups") == before
    assert not bridge.sql("SELECT 1 FROM task_groups WHERE name = %s", (body["name"],))


async def test_preview_refuses_what_create_refuses(admin: httpx.AsyncClient) -> None:
    r = await admin.post("/task-groups/jobspec-preview", json=seed_example(name="Bad Name"))
    assert r.status_code == 422
    assert r.json()["error"]["details"]["fields"][0]["field"] == "name"
    outside = await admin.post("/task-groups/jobspec-preview",
                               json={**seed_example(), "model_path": "/etc/passwd"})
    assert outside.status_code == 422, outside.text
    tp = await admin.post("/task-groups/jobspec-preview",
                          json={**seed_example(), "parallelism": "tensor_parallel",
                                "world_size": 16})
    assert tp.status_code == 422 and "world_size" in tp.text
