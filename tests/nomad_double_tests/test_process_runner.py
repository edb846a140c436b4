"""ProcessRunner: a real local process per task, with Nomad's task environment."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.nomad_double import NomadDouble, ProcessRunner, mixed_fleet

from .helpers import allocs, eventually, gpu_job, register

Json = dict[str, Any]

# Writes its environment next to itself, then serves HTTP where the host port is reachable.
SERVER = """
import http.server, json, os
with open(os.path.join(os.environ["NOMAD_TASK_DIR"], "env.json"), "w") as f:
    json.dump(dict(os.environ), f)
address = (os.environ["NOMAD_HOST_IP_http"], int(os.environ["NOMAD_HOST_PORT_http"]))
http.server.ThreadingHTTPServer(address, http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def command_for(alloc: Json, task: Json) -> list[str] | None:
    if task["Config"].get("exit_code") is not None:
        return [sys.executable, "-c", f"raise SystemExit({task['Config']['exit_code']})"]
    return [sys.executable, "-c", SERVER]


@dataclass
class Running:
    double: NomadDouble
    hooks: list[tuple[str, str, int]] = field(default_factory=list)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    events: list[tuple[str, str, int]] = []

    async def started(alloc: Json, task: Json, process: asyncio.subprocess.Process) -> None:
        events.append(("started", alloc["ID"], process.pid))

    def stopped(alloc: Json, task: Json, process: asyncio.subprocess.Process) -> None:
        events.append(("stopped", alloc["ID"], process.pid))

    runner = ProcessRunner(command_for, on_started=started, on_stopped=stopped,
                           workdir=tmp_path)
    async with NomadDouble(nodes=mixed_fleet(), runner=runner) as double:
        yield Running(double, events)


def served_job(job_id: str) -> Json:
    job = gpu_job(job_id, gpus=2, ports=["http"], max_parallel=1, device_constraints=[
        {"LTarget": "${device.attr.memory}", "Operand": ">=", "RTarget": "80 GiB"}])
    job["Meta"] = {"model": "llama3-8b"}
    job["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0]["To"] = 8000
    task = job["TaskGroups"][0]["Tasks"][0]
    task["Env"] = {"ENGINE_URL": "http://${NOMAD_HOST_ADDR_http}/v1",
                   "NODE": "${node.unique.name}"}
    return job


async def test_process_serves_on_the_allocated_port(running: Running, tmp_path: Path) -> None:
    double = running.double
    async with httpx.AsyncClient(base_url=double.address) as client:
        await register(client, served_job("served"))

        async def started() -> list[Json]:
            return [a for a in await allocs(client, "served") if a["ClientStatus"] == "running"]

        [stub] = await eventually(started)
        alloc = (await client.get(f"/v1/allocation/{stub['ID']}")).json()
        port = alloc["AllocatedResources"]["Shared"]["Ports"][0]
        env_file = tmp_path / stub["ID"] / "engine" / "local" / "env.json"

        async def serving() -> bool:
            try:
                async with httpx.AsyncClient() as direct:
                    response = await direct.get(f"http://{port['HostIP']}:{port['Value']}/")
                return response.status_code == 200 and env_file.exists()
            except httpx.TransportError:
                return False

        await eventually(serving, within=10)
        env = json.loads(env_file.read_text())
        devices = alloc["AllocatedResources"]["Tasks"]["engine"]["Devices"][0]["DeviceIDs"]
        assert env["NVIDIA_VISIBLE_DEVICES"] == ",".join(devices)
        assert env["NOMAD_ALLOC_ID"] == stub["ID"] and env["NOMAD_JOB_ID"] == "served"
        assert env["NOMAD_META_model"] == "llama3-8b"
        assert env["NOMAD_PORT_http"] == "8000"
        assert env["NOMAD_HOST_PORT_http"] == str(port["Value"])
        assert env["ENGINE_URL"] == f"http://{port['HostIP']}:{port['Value']}/v1"
        assert env["NODE"] == alloc["NodeName"] and env["NOMAD_DC"] == "dc1"
        assert alloc["DeploymentStatus"]["Healthy"] is True
        assert [e[0] for e in running.hooks] == ["started"]

        await client.delete("/v1/job/served")

        async def complete() -> bool:
            return {a["ClientStatus"] for a in await allocs(client, "served")} == {"complete"}

        await eventually(complete, within=10)
        assert [e[0] for e in running.hooks] == ["started", "stopped"]
        with pytest.raises(httpx.TransportError):
            async with httpx.AsyncClient() as direct:
                await direct.get(f"http://{port['HostIP']}:{port['Value']}/", timeout=2)


async def test_non_zero_exit_fails_the_alloc(running: Running) -> None:
    job = served_job("crash")
    job["TaskGroups"][0]["Tasks"][0]["Config"]["exit_code"] = 3
    job["TaskGroups"][0]["ReschedulePolicy"] = {"Attempts": 0, "Unlimited": False}
    async with httpx.AsyncClient(base_url=running.double.address) as client:
        await register(client, job)

        async def failed() -> list[Json]:
            return [a for a in await allocs(client, "crash") if a["ClientStatus"] == "failed"]

        [stub] = await eventually(failed, within=10)
        alloc = (await client.get(f"/v1/allocation/{stub['ID']}")).json()
        terminated = [e for e in alloc["TaskStates"]["engine"]["Events"]
                      if e["Type"] == "Terminated"]
        assert terminated[-1]["ExitCode"] == 3
        assert alloc["TaskStates"]["engine"]["Failed"] is True
