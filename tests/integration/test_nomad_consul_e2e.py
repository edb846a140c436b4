"""The cluster path end to end: the REST API places services on the Nomad API double, whose
process runner starts real llama.cpp engines and registers them in a real Consul dev agent
exactly as the rendered jobspec's service block says; the gateway's pool follows Consul
health; the official OpenAI SDK gets answers; a killed replica leaves the pool while the
other keeps serving; a canary at 20% gets its share, and none after 100/0."""

from __future__ import annotations

import asyncio
import collections
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest

from tests.support.bridge_helpers import unique
from tests.support.demo_model import model_source
from tests.support.gateway_harness import Consul, Gateway
from tests.support.nomad_bridge import start_bridge, stop_bridge
from tests.support.nomad_double import fleet
from tests.support.nomad_double.runners import ProcessRunner
from tests.support.nomad_double.server import NomadDouble

pytestmark = pytest.mark.slow


def _seconds(ns: int) -> str:
    return f"{max(1, ns // 1_000_000_000)}s"


class ConsulRegistrar:
    """What Nomad's Consul integration does for a task: register the group's service with
    its check at the allocation's address, deregister when the task ends."""

    def __init__(self, consul: Consul) -> None:
        self.consul = consul
        self.http = httpx.AsyncClient(base_url=consul.url, timeout=5)

    async def started(self, alloc: dict[str, Any], task: dict[str, Any], _: Any) -> None:
        group = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
        port = next(p for p in alloc["AllocatedResources"]["Shared"]["Ports"]
                    if p["Label"] == "http")
        for service in group["Services"]:
            check = service["Checks"][0]
            address = f"{port['HostIP']}:{port['Value']}"
            body = {
                "ID": self._id(alloc, task, service), "Name": service["Name"],
                "Tags": service["Tags"], "Address": port["HostIP"], "Port": port["Value"],
                "Meta": {k: v.replace("${NOMAD_ALLOC_ID}", alloc["ID"])
                         for k, v in (service.get("Meta") or {}).items()
                         if "${NOMAD_ALLOC_INDEX}" not in v},
                "Check": {"HTTP": f"http://{address}{check['Path']}",
                          "Interval": _seconds(check["Interval"]),
                          "Timeout": _seconds(check["Timeout"]),
                          "FailuresBeforeCritical": check.get("FailuresBeforeCritical") or 0},
            }
            (await self.http.put("/v1/agent/service/register", json=body)).raise_for_status()

    async def stopped(self, alloc: dict[str, Any], task: dict[str, Any], _: Any) -> None:
        group = next(g for g in alloc["Job"]["TaskGroups"] if g["Name"] == alloc["TaskGroup"])
        for service in group["Services"]:
            await self.http.put(f"/v1/agent/service/deregister/"
                                f"{self._id(alloc, task, service)}")

    @staticmethod
    def _id(alloc: dict[str, Any], task: dict[str, Any], service: dict[str, Any]) -> str:
        return f"_nomad-task-{alloc['ID']}-{task['Name']}-{service['Name']}-http"


def llama_for(alloc: dict[str, Any], task: dict[str, Any]) -> list[str]:
    """The docker task as a local process: the mounted model, the allocated host port."""
    config = task["Config"]
    args = config["args"]
    model = config["mount"][0]["source"]
    alias = args[args.index("-a") + 1]
    port = next(p for p in alloc["AllocatedResources"]["Shared"]["Ports"]
                if p["Label"] == "http")
    return [sys.executable, "-m", "llama_cpp.server", "--model", model,
            "--host", port["HostIP"], "--port", str(port["Value"]),
            "--model_alias", alias, "--n_ctx", "512"]


@pytest.fixture
async def cluster(pg, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    models = tmp_path / "models"
    models.mkdir()
    model = models / "smollm2.gguf"
    os.link(model_source(), model) if os.stat(model_source()).st_dev == os.stat(
        models).st_dev else __import__("shutil").copyfile(model_source(), model)
    consul = await asyncio.to_thread(Consul, tmp_path)
    registrar = ConsulRegistrar(consul)
    runner = ProcessRunner(llama_for, on_started=registrar.started,
                           on_stopped=registrar.stopped, workdir=tmp_path / "allocs")
    cpu_nodes = [n for n in fleet.mixed_fleet() if n["Name"].startswith("cpu")]
    double = NomadDouble(cpu_nodes, runner=runner, heartbeat_seconds=1.0)
    await double.start()
    app, server, url, token = await start_bridge(pg, double.address, resync=5.0,
                                                 model_roots=(models,))
    gateway = await asyncio.to_thread(Gateway, tmp_path, url, CONSUL_HTTP_ADDR=consul.addr)
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.ctx.bridge.settings.port}/api/v1",
                            headers={"Authorization": f"Bearer {token}"}, timeout=60)
    try:
        yield {"api": api, "gateway": gateway, "consul": consul, "double": double,
               "model": str(model)}
    finally:
        await api.aclose()
        await asyncio.to_thread(gateway.stop)
        await stop_bridge(server)
        await double.stop()
        await registrar.http.aclose()
        await asyncio.to_thread(consul.stop)


def service(name: str, model: str, **over: Any) -> dict[str, Any]:
    body = {"name": name, "image": "ghcr.io/ggml-org/llama.cpp:server", "engine": "llamacpp",
            "model_path": model, "gpu_required": 0, "model_name": "smol",
            # llama-cpp-python answers /v1/models once loaded; it has no /health
            # a busy single-threaded engine answers its check late: a few seconds of grace
            "health_check": {"path": "/v1/models", "interval_seconds": 1,
                             "timeout_seconds": 1, "unhealthy_threshold": 3}}
    body.update(over)
    return body


async def wait(check: Any, timeout: float, what: str) -> Any:  # noqa: ASYNC109
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


async def running(api: httpx.AsyncClient, gid: str, n: int) -> dict[str, Any] | None:
    g = (await api.get(f"/task-groups/{gid}")).json()
    return g if len(g["tasks"]) == n and all(t["status"] == "running"
                                             for t in g["tasks"]) else None


async def usable(gateway: Gateway, group_id: str, n: int) -> bool:
    return await asyncio.to_thread(gateway.usable, group_id) == n


async def passing(consul: Consul, name: str) -> int:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{consul.url}/v1/health/service/{name}", params={"passing": "1"})
    return len(r.json())


async def test_replicas_behind_consul_and_a_dead_one_leaves(cluster) -> None:
    api, gateway, consul = cluster["api"], cluster["gateway"], cluster["consul"]
    name = unique("smol")
    created = (await api.post("/task-groups", json=service(
        name, cluster["model"], parallelism="split", world_size=2))).json()
    key = created["api_key"]["key"]
    g = await wait(lambda: running(api, created["id"], 2), 90, "two replicas on Nomad")
    assert all(t["alloc_id"] and t["address"] for t in g["tasks"])
    await wait(lambda: passing(consul, f"hf-{name}"), 30, "passing checks in Consul")
    await wait(lambda: usable(gateway, created["id"], 2), 30, "the gateway's pool from Consul")
    client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    assert [m.id for m in (await client.models.list()).data] == ["smol"]
    reply = await client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "Hello"}], max_tokens=8)
    assert reply.choices[0].message.content is not None

    # kill one replica's engine: Consul marks it critical, the gateway drops it
    victim = g["tasks"][0]["address"]
    port = victim.rsplit(":", 1)[1]
    for p in psutil.process_iter(["cmdline"]):
        if "llama_cpp.server" in (p.info["cmdline"] or []) and port in p.info["cmdline"]:
            p.kill()
    await wait(lambda: usable(gateway, created["id"], 1), 15,
               "the dead replica to leave the pool")
    for _ in range(10):
        r = await client.chat.completions.with_raw_response.create(
            model="smol", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
        assert r.headers["x-heteroflow-backend"] != g["tasks"][0]["id"]
    await client.close()


async def test_canary_split_then_promotion(cluster) -> None:
    api, gateway = cluster["api"], cluster["gateway"]
    stable = (await api.post("/task-groups", json=service(unique("v1"), cluster["model"],
                                                          route={"version": "v1"}))).json()
    canary = (await api.post("/task-groups", json=service(
        unique("canary"), cluster["model"], route={"version": "canary", "weight": 20}))).json()
    await api.put(f"/model-routes/{stable['route']['id']}", json={"weight": 80})
    for g in (stable, canary):
        await wait(lambda g=g: running(api, g["id"], 1), 90, "both versions running")
        await wait(lambda g=g: usable(gateway, g["id"], 1), 30, "both versions in the pool")
    key = stable["api_key"]["key"]
    http = httpx.AsyncClient(base_url=gateway.url + "/v1", timeout=60,
                             headers={"Authorization": f"Bearer {key}"})
    gate = asyncio.Semaphore(6)

    async def version() -> str:
        async with gate:
            r = await http.post("/chat/completions", json={
                "model": "smol", "max_tokens": 1, "messages": [{"role": "user",
                                                               "content": "Hi"}]})
            assert r.status_code == 200, r.text
            return r.headers["x-heteroflow-route-version"]

    counts = collections.Counter(await asyncio.gather(*(version() for _ in range(300))))
    # 300 draws at p = 0.2: mean 60, sd 6.9; 4.5 sd either side
    assert 29 <= counts["canary"] <= 91, counts
    assert counts["v1"] + counts["canary"] == 300
    await api.put(f"/model-routes/{canary['route']['id']}", json={"weight": 0})
    await api.put(f"/model-routes/{stable['route']['id']}", json={"weight": 100})
    await asyncio.sleep(2.5)  # route changes take effect within 2 s
    after = collections.Counter(await asyncio.gather(*(version() for _ in range(60))))
    assert after == {"v1": 60}, after
    await http.aclose()
