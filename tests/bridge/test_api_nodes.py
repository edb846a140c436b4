"""Agent heartbeats, node listing, models per node, offline marking."""

from __future__ import annotations

import asyncio

from bridge.crypto import SecretBox
from tests.support.bridge_helpers import error_of, heartbeat, unique
from tests.support.pg import TEST_SECRET_KEY


async def agent_client(admin, bridge):
    r = await admin.post("/users", json={"name": unique("agent"), "role": "agent"})
    return bridge.client(r.json()["token"]["token"])


async def test_heartbeat_registers_node_and_models(admin, bridge) -> None:
    node_id = unique("node")
    async with await agent_client(admin, bridge) as agent:
        r = await agent.post("/agent/heartbeat", json=heartbeat(node_id))
        assert r.status_code == 200, r.text
        assert r.json() == {"node_id": node_id, "status": "online", "interval_seconds": 30}
        # a later beat without models keeps the models it reported before
        r = await agent.post("/agent/heartbeat", json=heartbeat(node_id, models=None))
        assert r.status_code == 200
    node = (await admin.get(f"/nodes/{node_id}")).json()
    assert node["status"] == "online" and node["gpus"][0]["compute_capability"] == "8.0"
    assert node["model_count"] == 1 and node["skipped_vendors"] == {"amd": "amd-smi not found"}
    assert "agent_secret" not in node and "agent_secret_enc" not in node
    models = (await admin.get("/models", params={"node_id": node_id})).json()
    assert [(m["name"], m["quantization"], m["node_id"]) for m in models] == [
        ("SmolLM2-135M-Instruct.Q4_1", "Q4_1", node_id)]
    sealed = bridge.sql("SELECT agent_secret_enc FROM nodes WHERE id = %s", (node_id,))[0][0]
    assert "s3cret" not in sealed
    assert SecretBox(TEST_SECRET_KEY).open(sealed) == "s3cret-s3cret-s3cret-0001"
    trail = (await admin.get("/audit", params={"object_id": node_id})).json()["items"]
    assert [e["action"] for e in trail] == ["node.online"]


async def test_agent_account_reaches_only_heartbeats(admin, bridge) -> None:
    async with await agent_client(admin, bridge) as agent:
        for method, path in (("GET", "/task-groups"), ("GET", "/nodes"),
                             ("POST", "/task-groups")):
            r = await agent.request(method, path, json={})
            assert r.status_code == 403, path
    # and people do not send heartbeats
    r = await admin.post("/users", json={"name": unique("op"), "role": "operator"})
    async with bridge.client(r.json()["token"]["token"]) as op:
        r = await op.post("/agent/heartbeat", json=heartbeat(unique("node")))
        assert r.status_code == 403 and error_of(r)["code"] == "forbidden"


async def test_bad_heartbeats(admin, bridge) -> None:
    async with await agent_client(admin, bridge) as agent:
        for bad in (heartbeat("bad id!"), heartbeat(unique("n"), gpus=[{"vendor": "x"}]),
                    heartbeat(unique("n"), agent_url="file:///etc/passwd"),
                    {**heartbeat(unique("n")), "extra": 1}):
            r = await agent.post("/agent/heartbeat", json=bad)
            assert r.status_code == 422, bad
            assert error_of(r)["code"] == "validation_failed"


async def test_missed_heartbeats_mark_the_node_offline(admin, bridge) -> None:
    node_id = unique("node")
    async with await agent_client(admin, bridge) as agent:
        await agent.post("/agent/heartbeat", json=heartbeat(node_id))
        bridge.sql("UPDATE nodes SET last_heartbeat = now() - interval '1 minute'"
                   " WHERE id = %s", (node_id,))
        for _ in range(50):  # the bridge checks every second with a 6 s window in tests
            if (await admin.get(f"/nodes/{node_id}")).json()["status"] == "offline":
                break
            await asyncio.sleep(0.2)
        node = (await admin.get(f"/nodes/{node_id}")).json()
        assert node["status"] == "offline" and "no heartbeat" in node["status_reason"]
        await agent.post("/agent/heartbeat", json=heartbeat(node_id, models=None))
    node = (await admin.get(f"/nodes/{node_id}")).json()
    assert node["status"] == "online" and node["model_count"] == 1
    trail = (await admin.get("/audit", params={"object_id": node_id})).json()["items"]
    assert [e["action"] for e in trail] == ["node.online", "node.offline", "node.online"]


async def test_a_node_stays_with_the_account_that_registered_it(admin, bridge) -> None:
    node_id = unique("node")
    async with await agent_client(admin, bridge) as first:
        assert (await first.post("/agent/heartbeat", json=heartbeat(node_id))).status_code == 200
    async with await agent_client(admin, bridge) as second:
        r = await second.post("/agent/heartbeat", json=heartbeat(
            node_id, agent_url="http://127.0.0.1:1", agent_secret="x" * 32))
        assert r.status_code == 403 and error_of(r)["code"] == "forbidden"
    url = bridge.sql("SELECT agent_url FROM nodes WHERE id = %s", (node_id,))[0][0]
    assert url == "http://127.0.0.1:3334"
