"""Autoscaling on the Nomad path: the bridge places on the Nomad API double (real llama.cpp
engines as processes, registered in a real Consul), a separate gateway process publishes
its per-service counters, and the policy loop scales through Nomad's scale API, whose
scaling events keep each move's sentence; the rendered job carries the scaling block."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_nomad_consul_e2e import (
    ConsulRegistrar,
    llama_for,
    running,
    service,
    usable,
    wait,
)
from tests.support.bridge_helpers import unique
from tests.support.demo_model import model_source
from tests.support.gateway_harness import Consul, Gateway
from tests.support.nomad_bridge import start_bridge, stop_bridge
from tests.support.nomad_double import fleet
from tests.support.nomad_double.runners import ProcessRunner
from tests.support.nomad_double.server import NomadDouble

pytestmark = pytest.mark.slow


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
    gateway = None
    app, server, url, token = await start_bridge(
        pg, double.address, resync=5.0, model_roots=(models,),
        autoscale_interval_seconds=1.0, autoscale_window_seconds=3.0)
    try:
        gateway = await asyncio.to_thread(Gateway, tmp_path, url, CONSUL_HTTP_ADDR=consul.addr,
                                          HETEROFLOW_SIGNALS_INTERVAL_S="1")
        api = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{app.ctx.bridge.settings.port}/api/v1",
            headers={"Authorization": f"Bearer {token}"}, timeout=60)
        yield {"api": api, "gateway": gateway, "double": double, "model": str(model)}
        await api.aclose()
    finally:
        if gateway is not None:
            await asyncio.to_thread(gateway.stop)
        await stop_bridge(server)
        await double.stop()
        await registrar.http.aclose()
        await asyncio.to_thread(consul.stop)


async def stream_load(base: str, key: str, stop: asyncio.Event, clients: int
                      ) -> tuple[list[str], set[str], int]:
    failures: list[str] = []
    backends: set[str] = set()
    done = 0

    async def one(http: httpx.AsyncClient) -> None:
        nonlocal done
        while not stop.is_set():
            try:
                async with http.stream("POST", "/chat/completions", json={
                        "model": "smol", "max_tokens": 48, "stream": True,
                        "messages": [{"role": "user", "content": "Tell a story."}]}) as r:
                    body = b"".join([chunk async for chunk in r.aiter_bytes()])
                    if r.status_code != 200 or b"[DONE]" not in body or b'"error"' in body:
                        failures.append(f"{r.status_code}: {body[-300:]!r}")
                    backends.add(r.headers.get("x-heteroflow-backend", "?"))
                    done += 1
            except httpx.HTTPError as exc:
                failures.append(repr(exc))

    async with httpx.AsyncClient(base_url=base + "/v1", timeout=120,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        await asyncio.gather(*(one(http) for _ in range(clients)))
    return failures, backends, done


async def test_autoscaler_scales_through_nomads_scale_api(cluster) -> None:
    api, gateway, double = cluster["api"], cluster["gateway"], cluster["double"]
    # llama-cpp-python serves one request at a time: under load its health check waits its
    # turn, so the check gets the time of a few streams before it counts as failed.
    created = (await api.post("/task-groups", json=service(
        unique("auto"), cluster["model"], health_check={
            "path": "/v1/models", "interval_seconds": 5, "timeout_seconds": 5,
            "unhealthy_threshold": 5}))).json()
    gid, key = created["id"], created["api_key"]["key"]
    await wait(lambda: running(api, gid, 1), 120, "one replica on Nomad")
    await wait(lambda: usable(gateway, gid, 1), 60, "the gateway's pool from Consul")
    r = await api.put(f"/task-groups/{gid}/scale-policy", json={
        "auto_scale": True, "min_replicas": 1, "max_replicas": 2,
        "metric": "concurrent_requests", "target_value": 1, "cooldown_seconds": 30,
        "up_delay_seconds": 2, "down_delay_seconds": 5})
    assert r.status_code == 200, r.text
    job_id = (await api.get(f"/task-groups/{gid}")).json()["nomad_job_id"]
    nomad = httpx.AsyncClient(base_url=double.address, timeout=30)

    async def bounded() -> bool:  # re-registered (counts preserved) with the scaling block
        job = (await nomad.get(f"/v1/job/{job_id}")).json()
        scaling = job["TaskGroups"][0].get("Scaling") or {}
        return scaling.get("Min") == 1 and scaling.get("Max") == 2 and not scaling["Enabled"]

    await wait(bounded, 60, "the job's scaling block")
    stop = asyncio.Event()
    load = asyncio.create_task(stream_load(gateway.url, key, stop, clients=4))
    try:
        await wait(lambda: running(api, gid, 2), 240, "a second replica through Nomad")
        await wait(lambda: usable(gateway, gid, 2), 120, "both replicas in the pool")
        await asyncio.sleep(5)  # a few more requests, now over both
    finally:
        stop.set()
        failures, backends, done = await load
    assert not failures, failures[:3]
    assert done > 0 and len(backends - {"?"}) == 2, backends
    try:
        await wait(lambda: running(api, gid, 1), 180, "the return to one replica")
    except AssertionError:
        g = (await api.get(f"/task-groups/{gid}")).json()
        deployment = (await nomad.get(f"/v1/job/{job_id}/deployment")).json()
        raise AssertionError(f"still {[t['status'] for t in g['tasks']]}: {g['policy']}; "
                             f"deployment {deployment}") from None

    events = (await nomad.get(f"/v1/job/{job_id}/scale")).json()
    await nomad.aclose()
    messages = [e.get("Message", "") for e in events["TaskGroups"]["engine"]["Events"] or []]
    assert any("scaled 1 -> 2" in m and "requests in flight" in m for m in messages), messages
    assert any("scaled 2 -> 1" in m for m in messages), messages
