"""Shared helpers for the Nomad API double's own tests: job builders and small waits."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

Json = dict[str, Any]


def gpu_job(job_id: str, *, count: int = 1, gpus: int = 1, device: str = "nvidia/gpu",
            device_constraints: list[Json] | None = None, constraints: list[Json] | None = None,
            cpu: int = 1000, memory: int = 1024, max_parallel: int = 1,
            ports: list[str] | None = None, scaling: Json | None = None) -> Json:
    """A registrable api.Job (sparse, as a client would send it) asking for GPUs."""
    group: Json = {
        "Name": "server", "Count": count,
        "Tasks": [{"Name": "engine", "Driver": "docker",
                   "Config": {"image": "vllm/vllm-openai:v0.6.0"},
                   "Resources": {"CPU": cpu, "MemoryMB": memory, "Devices": [
                       {"Name": device, "Count": gpus,
                        "Constraints": device_constraints}] if gpus else None}}],
    }
    if ports:
        group["Networks"] = [{"Mode": "host", "DynamicPorts": [{"Label": p} for p in ports]}]
    if scaling:
        group["Scaling"] = scaling
    return {"ID": job_id, "Type": "service", "Datacenters": ["dc1"],
            "Constraints": constraints, "Update": {"MaxParallel": max_parallel},
            "TaskGroups": [group]}


def cpu_job(job_id: str, *, count: int = 1, cpu: int = 500, memory: int = 256,
            ports: list[str] | None = None, max_parallel: int = 0) -> Json:
    return gpu_job(job_id, count=count, gpus=0, cpu=cpu, memory=memory, ports=ports,
                   max_parallel=max_parallel)


async def register(client: httpx.AsyncClient, job: Json, **extra: Any) -> Json:
    response = await client.put("/v1/jobs", json={"Job": job, **extra})
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def allocs(client: httpx.AsyncClient, job_id: str) -> list[Json]:
    response = await client.get(f"/v1/job/{job_id}/allocations")
    assert response.status_code == 200, response.text
    found: list[Json] = response.json()
    return found


async def evals(client: httpx.AsyncClient, job_id: str) -> list[Json]:
    response = await client.get(f"/v1/job/{job_id}/evaluations")
    assert response.status_code == 200, response.text
    return sorted(response.json(), key=lambda e: e["CreateIndex"])


async def blocked_eval(client: httpx.AsyncClient, job_id: str) -> Json:
    found = [e for e in await evals(client, job_id) if e["Status"] == "blocked"]
    assert found, "no blocked evaluation"
    return found[-1]


async def eventually(check: Any, within: float = 5.0) -> Any:
    """Poll an async predicate until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
