"""Ways to run the double: in-process, in a thread for sync code, and as a standalone process."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.nomad_double import AutoRunner, NomadDouble, gpu_fleet, mixed_fleet
from tests.support.nomad_double.fleet import FIXTURES, MIXED, build_node

from .helpers import cpu_job

ROOT = Path(__file__).resolve().parent.parent.parent
AGENT_KEYS = {"heteroflow.agent", "heteroflow.gpu.vendor", "heteroflow.gpu.count",
              "heteroflow.gpu.model", "heteroflow.gpu.memory_mb", "heteroflow.engines",
              "heteroflow.models"}


def test_fixtures_match_the_fleet_builder() -> None:
    on_disk = {p.stem: json.loads(p.read_text()) for p in FIXTURES.glob("*.json")}
    assert on_disk == {spec.name: build_node(spec) for spec in MIXED}


def test_fleet_contract() -> None:
    nodes = {n["Name"]: n for n in mixed_fleet()}
    a100 = nodes["gpu-a100-01"]
    [device] = a100["NodeResources"]["Devices"]
    assert device["Attributes"]["memory"] == {"Float": None, "Int": 81920, "String": None,
                                              "Bool": None, "Unit": "MiB"}
    assert len(device["Instances"]) == 8 and a100["Meta"]["heteroflow.gpu.cc"] == "8.0"
    assert nodes["gpu-h100-01"]["Meta"]["heteroflow.gpu.cc"] == "9.0"
    assert nodes["gpu-p100-01"]["Meta"]["heteroflow.gpu.cc"] == "6.0"
    assert a100["Attributes"]["driver.docker.runtimes"] == "runc,nvidia"
    for name, node in nodes.items():
        assert node["Attributes"]["unique.network.ip-address"].startswith("127.")
        assert node["Attributes"]["nomad.version"] == "1.6.3"
        assert node["Attributes"]["consul.version"] == "1.8.7"
        if name.startswith(("gpu-", "npu-")):
            assert set(node["Meta"]) >= AGENT_KEYS, name
    for name in ("gpu-mi300x-01", "gpu-dcu-01", "npu-ascend-01", "gpu-musa-01", "cpu-01"):
        assert nodes[name]["NodeResources"]["Devices"] is None
    vendors = {n["Meta"].get("heteroflow.gpu.vendor") for n in nodes.values()}
    assert vendors == {"nvidia", "amd", "hygon", "ascend", "musa", None}
    addresses = {n["Attributes"]["unique.network.ip-address"] for n in gpu_fleet(300)}
    assert len(addresses) == 300


def test_thread_mode_for_sync_callers() -> None:
    double = NomadDouble(nodes=mixed_fleet(), runner=AutoRunner())
    double.start_in_thread()
    try:
        with httpx.Client(base_url=double.address) as client:
            assert client.put("/v1/jobs", json={"Job": cpu_job("web")}).status_code == 200
            [alloc] = client.get("/v1/job/web/allocations").json()
            assert alloc["ClientStatus"] == "running"
            double.set_alloc_status(alloc["ID"], "failed")
            assert client.get(f"/v1/allocation/{alloc['ID']}").json()["ClientStatus"] == "failed"
            assert len(double.allocations("web")) >= 1
    finally:
        double.stop_thread()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_standalone_process() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.nomad_double", "--port", str(port),
         "--fleet", "mixed"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/v1/nodes", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert len(response.json()) == 8
    finally:
        process.terminate()
        process.wait(timeout=10)
