"""The Nomad path end to end: REST API -> jobspec -> Nomad API double -> allocations -> rows.

The double is a real HTTP server with a real scheduler (device constraints with units, node
metadata, capacity), so what is asserted here is what Nomad would do with our jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sanic import Sanic

from tests.support.bridge_helpers import seed_example
from tests.support.nomad_bridge import start_bridge, stop_bridge
from tests.support.nomad_double import fleet
from tests.support.nomad_double.runners import AutoRunner, ManualRunner
from tests.support.nomad_double.server import NomadDouble
from tests.support.pg import free_port


class Env:
    def __init__(self, double: NomadDouble, api: httpx.AsyncClient, db_url: str,
                 app: Sanic) -> None:  # type: ignore[type-arg]
        self.double, self.api, self.db_url, self.app = double, api, db_url, app
        self.last: dict[str, Any] | None = None

    async def eventually(self, check: Callable[[], Any], timeout: float = 15.0) -> Any:  # noqa: ASYNC109
        """Poll ``check`` (sync or async) until it returns something truthy."""
        deadline = asyncio.get_running_loop().time() + timeout
        last: Any = None
        while asyncio.get_running_loop().time() < deadline:
            last = check()
            if asyncio.iscoroutine(last):
                last = await last
            if last:
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"not reached in {timeout} s; last group seen: {self.last!r}")

    async def group(self, gid: str) -> dict[str, Any]:
        r = await self.api.get(f"/task-groups/{gid}")
        assert r.status_code == 200, r.text
        self.last = {k: v for k, v in r.json().items() if k in (
            "status", "status_reason", "engine", "nomad_job_id", "tasks")}
        return r.json()

    async def create(self, **over: Any) -> dict[str, Any]:
        r = await self.api.post("/task-groups", json=seed_example(**over))
        assert r.status_code == 201, r.text
        return r.json()


@pytest.fixture
async def env_factory(pg) -> AsyncIterator[Callable[..., Any]]:
    made: list[tuple[NomadDouble, Any, httpx.AsyncClient]] = []

    async def make(nodes: list[dict[str, Any]] | None = None, runner: Any = None,
                   **settings: Any) -> Env:
        double = NomadDouble(nodes if nodes is not None else fleet.mixed_fleet(),
                             runner=runner or AutoRunner(), heartbeat_seconds=1.0)
        await double.start()
        app, server, url, token = await start_bridge(pg, double.address, **settings)
        api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.ctx.bridge.settings.port}/api/v1",
                                headers={"Authorization": f"Bearer {token}"}, timeout=30)
        made.append((double, server, api))
        return Env(double, api, url, app)

    yield make
    for double, server, api in made:
        await api.aclose()
        await stop_bridge(server)
        await double.stop()


def nodes_named(*kinds: str) -> list[dict[str, Any]]:
    """Fleet nodes whose name mentions one of ``kinds`` (gpu-a100-01, gpu-p100-01, ...)."""
    return [n for n in fleet.mixed_fleet() if any(k in n["Name"] for k in kinds)]


class TestPlacement:
    async def test_service_is_placed_on_a_gpu_and_read_back(self, env_factory) -> None:
        env = await env_factory()
        g = await env.create(estimated_gpu_memory_mb=40_000)
        done = await env.eventually(lambda: _running(env, g["id"]))
        task = done["tasks"][0]
        assert done["status"] == "running" and done["current_replicas"] == 1
        assert done["nomad_job_id"] == f"hf-{g['name']}"
        assert task["gpu_id"].startswith("GPU-") and "," not in task["gpu_id"]
        assert task["node_name"] and task["address"].count(":") == 1
        assert task["alloc_id"] and task["status_reason"].startswith("running on")
        job = env.double.store.jobs[("default", done["nomad_job_id"])] if hasattr(
            env.double.store, "jobs") else None
        assert job is None or job["Meta"]["hf_task_group_id"] == g["id"]

    async def test_tensor_parallel_puts_all_gpus_on_one_node(self, env_factory) -> None:
        env = await env_factory()
        g = await env.create(parallelism="tensor_parallel", world_size=4, gpu_required=4,
                             estimated_gpu_memory_mb=200_000)
        done = await env.eventually(lambda: _running(env, g["id"]))
        (task,) = done["tasks"]
        assert len(task["gpu_id"].split(",")) == 4
        alloc = env.double.allocations(done["nomad_job_id"])[0]
        devices = alloc["AllocatedResources"]["Tasks"]["engine"]["Devices"][0]["DeviceIDs"]
        assert sorted(devices) == sorted(task["gpu_id"].split(","))

    async def test_split_spreads_replicas(self, env_factory) -> None:
        env = await env_factory(nodes=nodes_named("a100", "h100"))
        g = await env.create(parallelism="split", world_size=3)
        done = await env.eventually(lambda: _running(env, g["id"]))
        assert [t["rank"] for t in done["tasks"]] == [0, 1, 2]
        assert len({t["node_name"] for t in done["tasks"]}) >= 2
        assert all(len(t["gpu_id"].split(",")) == 1 for t in done["tasks"])

    async def test_p100_gets_llamacpp_not_vllm(self, env_factory) -> None:
        env = await env_factory(nodes=nodes_named("p100"))
        g = await env.create(image="registry.local/inference:2026.11", gpu_type="nvidia",
                             model_path="/models/qwen2.5-7b-q4.gguf")
        done = await env.eventually(lambda: _running(env, g["id"]))
        assert done["engine"] == "llamacpp"
        hcl = (await env.api.get(f"/task-groups/{g['id']}/jobspec")).text
        assert '"-ngl", "99"' in hcl and "compute capability" not in hcl

    async def test_vllm_pinned_on_an_old_fleet_says_why(self, env_factory) -> None:
        env = await env_factory(nodes=nodes_named("p100"))
        g = await env.create()
        done = await env.eventually(lambda: _reason_has(env, g["id"], "compute capability"))
        assert done["status"] == "scheduling"
        assert "7.5" in done["status_reason"]
        assert done["tasks"][0]["status"] == "pending"
        assert "compute capability" in done["tasks"][0]["status_reason"]

    async def test_too_large_for_any_gpu_is_pending_with_the_reason(self, env_factory) -> None:
        env = await env_factory()
        g = await env.create(estimated_gpu_memory_mb=300_000)
        done = await env.eventually(lambda: _reason_has(env, g["id"], "no GPU matching"))
        assert done["tasks"][0]["node_name"] is None

    async def test_freeing_gpus_unblocks_a_waiting_service(self, env_factory) -> None:
        only = nodes_named("a100")  # one node, 8 GPUs
        env = await env_factory(nodes=only, runner=ManualRunner())
        fillers = [await env.create(parallelism="tensor_parallel", world_size=4,
                                    gpu_required=4) for _ in range(2)]
        for f in fillers:
            await env.eventually(lambda f=f: _placed(env, f["id"]))
        waiting = await env.create()
        await env.eventually(lambda: _reason_has(env, waiting["id"], "in use"))
        r = await env.api.delete(f"/task-groups/{fillers[0]['id']}")
        assert r.status_code == 200, r.text
        assert env.double.allocations(f"hf-{fillers[0]['name']}") == [] or all(
            a["DesiredStatus"] == "stop" for a in env.double.allocations(
                f"hf-{fillers[0]['name']}"))
        await env.eventually(lambda: _placed(env, waiting["id"]))


class TestOperations:
    async def test_jobspec_and_plan(self, env_factory) -> None:
        env = await env_factory()
        g = await env.create(estimated_gpu_memory_mb=20_000)
        r = await env.api.get(f"/task-groups/{g['id']}/jobspec")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert f'job "hf-{g["name"]}"' in r.text and 'device "nvidia/gpu"' in r.text
        assert r.headers["x-heteroflow-engine"] == "vllm"
        plan = (await env.api.get(f"/task-groups/{g['id']}/jobspec",
                                  params={"plan": "true"})).json()
        assert "JobModifyIndex" in plan and "Annotations" in plan

    async def test_delete_purges_the_job(self, env_factory) -> None:
        env = await env_factory(runner=ManualRunner())
        g = await env.create()
        await env.eventually(lambda: _placed(env, g["id"]))
        r = await env.api.delete(f"/task-groups/{g['id']}")
        assert r.status_code == 200
        async with httpx.AsyncClient() as raw:
            gone = await raw.get(f"{env.double.address}/v1/job/hf-{g['name']}")
        assert gone.status_code == 404 and gone.headers["content-type"].startswith("text/plain")

    async def test_model_path_outside_roots_is_refused(self, env_factory) -> None:
        env = await env_factory()
        body = seed_example(model_path="/var/run/docker.sock")
        r = await env.api.post("/task-groups", json=body)
        assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "model_path"
        assert (await env.api.get("/task-groups", params={"name": body["name"]})).json()[
            "total"] == 0

    async def test_engine_on_the_wrong_vendor_is_refused(self, env_factory) -> None:
        env = await env_factory()
        r = await env.api.post("/task-groups", json=seed_example(gpu_type="ascend"))
        assert r.status_code == 422 and "ascend" in r.json()["error"]["message"]


class TestResilience:
    async def test_nomad_down_at_create_then_back(self, pg) -> None:
        port = free_port()
        double = NomadDouble(fleet.mixed_fleet(), runner=AutoRunner(), port=port,
                             heartbeat_seconds=1.0)
        app, server, _, token = await start_bridge(pg, f"http://127.0.0.1:{port}", resync=2.0)
        api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.ctx.bridge.settings.port}/api/v1",
                                headers={"Authorization": f"Bearer {token}"}, timeout=30)
        env = Env(double, api, "", app)
        try:
            g = await env.create()
            waiting = await env.eventually(lambda: _reason_has(env, g["id"], "unreachable"))
            assert waiting["status"] == "pending"
            await double.start()
            done = await env.eventually(lambda: _running(env, g["id"]), timeout=40)
            assert done["nomad_job_id"]
        finally:
            await api.aclose()
            await stop_bridge(server)
            await double.stop()

    async def test_restart_converges_and_purges_orphans(self, pg) -> None:
        double = NomadDouble(fleet.mixed_fleet(), runner=ManualRunner(), heartbeat_seconds=1.0)
        await double.start()
        app, server, url, token = await start_bridge(pg, double.address)
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{app.ctx.bridge.settings.port}/api/v1"
        try:
            async with httpx.AsyncClient(base_url=base, headers=headers) as api:
                env = Env(double, api, url, app)
                keep = await env.create()
                lose = await env.create()
                await env.eventually(lambda: _placed(env, keep["id"]))
                await env.eventually(lambda: _placed(env, lose["id"]))
            await stop_bridge(server)
            # While the bridge is down: one alloc starts running, one group's rows vanish
            # (as if deleted by hand), so its job is an orphan.
            alloc = double.allocations(f"hf-{keep['name']}")[0]
            double.set_alloc_status(alloc["ID"], "running", healthy=True)
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DELETE FROM task_groups WHERE id = %s", (lose["id"],))
            app, server, _, _ = await start_bridge(pg, double.address, db_url=url)
            base = f"http://127.0.0.1:{app.ctx.bridge.settings.port}/api/v1"
            async with httpx.AsyncClient(base_url=base, headers=headers) as api:
                env = Env(double, api, url, app)
                await env.eventually(lambda: _running(env, keep["id"]))
                await env.eventually(lambda: all(
                    a["DesiredStatus"] == "stop"
                    for a in double.allocations(f"hf-{lose['name']}")))
                async with httpx.AsyncClient() as raw:
                    r = await raw.get(f"{double.address}/v1/job/hf-{lose['name']}")
                assert r.status_code == 404
        finally:
            await stop_bridge(server)
            await double.stop()

    async def test_a_job_removed_behind_our_back_is_registered_again(self, env_factory) -> None:
        env = await env_factory(resync=2.0)
        g = await env.create()
        done = await env.eventually(lambda: _running(env, g["id"]))
        resyncs = env.app.ctx.bridge.reconciler.resyncs
        async with httpx.AsyncClient() as raw:  # like `nomad job stop -purge`
            await raw.delete(f"{env.double.address}/v1/job/{done['nomad_job_id']}",
                             params={"purge": "true"})
        await env.eventually(lambda: any(
            a["DesiredStatus"] == "run" and a["ID"] != done["tasks"][0]["alloc_id"]
            for a in env.double.allocations(done["nomad_job_id"])), timeout=20)
        async def replaced() -> Any:
            now = await _running(env, g["id"])
            return now if now and now["tasks"][0]["alloc_id"] != done["tasks"][0][
                "alloc_id"] else None

        await env.eventually(replaced, timeout=20)
        # events are followed between resyncs, not answered by one resync per batch
        assert env.app.ctx.bridge.reconciler.resyncs - resyncs <= 12

    async def test_event_stream_gap_is_healed_by_resync(self, env_factory) -> None:
        env = await env_factory(runner=ManualRunner(), resync=2.0)
        g = await env.create()
        placed = await env.eventually(lambda: _placed(env, g["id"]))
        resyncs = env.app.ctx.bridge.reconciler.resyncs
        env.double.close_streams()
        alloc = env.double.allocations(placed["nomad_job_id"])[0]
        env.double.drop_events_until(10**9)
        env.double.set_alloc_status(alloc["ID"], "running", healthy=True)
        await env.eventually(lambda: _running(env, g["id"]))
        assert env.app.ctx.bridge.reconciler.resyncs > resyncs


async def _running(env: Env, gid: str) -> dict[str, Any] | None:
    g = await env.group(gid)
    return g if g["status"] == "running" and all(
        t["status"] == "running" for t in g["tasks"]) else None


async def _placed(env: Env, gid: str) -> dict[str, Any] | None:
    g = await env.group(gid)
    return g if g["tasks"] and all(t["node_name"] for t in g["tasks"]) else None


async def _reason_has(env: Env, gid: str, words: str) -> dict[str, Any] | None:
    g = await env.group(gid)
    return g if words in g["status_reason"] else None


class TestServiceOperations:
    async def test_scale_waits_out_a_deployment_then_adds_a_replica(self, env_factory) -> None:
        env = await env_factory(runner=ManualRunner(), nodes=nodes_named("a100"))
        g = await env.create(parallelism="split", world_size=1)
        placed = await env.eventually(lambda: _placed(env, g["id"]))
        r = await env.api.put(f"/task-groups/{g['id']}/scale", json={"replicas": 2})
        assert r.status_code == 409 and r.json()["error"]["code"] == "nomad_conflict"
        assert "deployment" in r.json()["error"]["message"]
        assert len((await env.group(g["id"]))["tasks"]) == 1  # nothing changed
        alloc = env.double.allocations(placed["nomad_job_id"])[0]
        env.double.set_alloc_status(alloc["ID"], "running", healthy=True)
        await env.eventually(lambda: _running(env, g["id"]))

        async def scaled() -> Any:
            r = await env.api.put(f"/task-groups/{g['id']}/scale", json={"replicas": 2})
            return r if r.status_code == 200 else None

        r = await env.eventually(scaled)  # once Nomad's deployment is marked successful
        assert [t["rank"] for t in r.json()["tasks"]] == [0, 1]
        second = await env.eventually(lambda: _placed(env, g["id"]))
        assert second["tasks"][1]["node_name"]
        assert len(env.double.allocations(placed["nomad_job_id"])) == 2

    async def test_stop_then_retry_after_a_failure(self, env_factory) -> None:
        env = await env_factory(runner=ManualRunner())
        g = await env.create()
        placed = await env.eventually(lambda: _placed(env, g["id"]))
        tid = placed["tasks"][0]["id"]
        alloc = env.double.allocations(placed["nomad_job_id"])[0]
        env.double.set_alloc_status(alloc["ID"], "failed", healthy=False)
        await env.eventually(lambda: _task_status(env, g["id"], "failed"))
        # the group follows its task in the reconciler's next write, not necessarily the same
        failed = await env.eventually(lambda: _group_status(env, g["id"], "failed"))
        assert failed["status"] == "failed"
        r = await env.api.post(f"/tasks/{tid}", params={"action": "retry"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] in ("pending", "scheduled")
        await env.eventually(lambda: _fresh_alloc(env, placed["nomad_job_id"], alloc["ID"]))
        bad = await env.api.post(f"/tasks/{tid}", params={"action": "reboot"})
        assert bad.status_code == 422

        live = next(a for a in env.double.allocations(placed["nomad_job_id"])
                    if a["ID"] != alloc["ID"])
        env.double.set_alloc_status(live["ID"], "running", healthy=True)
        await env.eventually(lambda: _running(env, g["id"]))
        r = await env.api.post(f"/tasks/{tid}/stop")
        assert r.status_code == 200 and r.json()["status"] == "stopping"
        done = await env.eventually(lambda: _task_status(env, g["id"], "completed"))
        done = await env.eventually(lambda: _group_status(env, g["id"], "completed"))
        assert done["tasks"][0]["status"] == "completed"
        r = await env.api.delete(f"/task-groups/{g['id']}")
        assert r.status_code == 200


async def _task_status(env: Env, gid: str, status: str) -> dict[str, Any] | None:
    g = await env.group(gid)
    return g if g["tasks"] and g["tasks"][0]["status"] == status else None


async def _group_status(env: Env, gid: str, status: str) -> dict[str, Any] | None:
    g = await env.group(gid)
    return g if g["status"] == status else None


def _fresh_alloc(env: Env, job_id: str, old: str) -> bool:
    return any(a["ID"] != old and a["DesiredStatus"] == "run"
               for a in env.double.allocations(job_id))
