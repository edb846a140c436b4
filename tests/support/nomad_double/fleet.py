"""Client nodes for the double: a mixed GPU fleet (stored as JSON fixtures) and large A100 fleets.

NVIDIA GPUs appear as `nvidia/gpu` devices as a device plugin reports them; the other vendors'
fixture nodes are visible only through node metadata, as on a cluster without heteroflow-gpu
(`device_plugins.with_plugin_devices` gives a node the devices the real plugin reports).
Every GPU node carries the dynamic metadata our node agent publishes (`heteroflow.*` keys,
a contract).
Addresses are 127.0.0.0/8 loopback addresses so processes started for allocations are reachable.
Every node offers a `models` host volume (/srv/models), where engines find model weights.

    # regenerate tests/fixtures/nomad/nodes/*.json
    python -m tests.support.nomad_double --write-fixtures
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Json = dict[str, Any]

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nomad" / "nodes"
_NS = uuid.UUID("6f1c0d2e-9a4b-4c1e-8d3f-5b7a9e2c4d10")
_EPOCH_NS = 1_764_000_000_000_000_000  # fixed so fixtures are byte-stable
_EPOCH_RFC = "2025-11-24T16:00:00Z"
SIGNALS = ("SIGABRT,SIGALRM,SIGBUS,SIGCHLD,SIGCONT,SIGFPE,SIGHUP,SIGILL,SIGINT,SIGIO,SIGIOT,"
           "SIGKILL,SIGPIPE,SIGPROF,SIGQUIT,SIGSEGV,SIGSTOP,SIGSYS,SIGTERM,SIGTRAP,SIGTSTP,"
           "SIGTTIN,SIGTTOU,SIGURG,SIGUSR1,SIGUSR2,SIGWINCH,SIGXCPU,SIGXFSZ")
DYNAMIC_META_PREFIX = "heteroflow."


@dataclass(frozen=True)
class Gpu:
    """GPUs of one model on a node; `plugin` is true when Nomad sees them as devices."""

    vendor: str
    model: str
    count: int
    memory_mb: int
    plugin: bool
    cc: str | None = None
    power_w: int = 400
    cores_clock: int = 1410
    memory_clock: int = 1593


@dataclass(frozen=True)
class NodeSpec:
    """What differs between our fleet's nodes; the rest of the Node JSON is derived."""

    name: str
    ip: str
    cores: int
    mhz: int
    memory_mb: int
    gpu: Gpu | None = None
    engines: str = "vllm,sglang,llamacpp"
    models: str = "Qwen2.5-7B-Instruct,llama3-8b"
    datacenter: str = "dc1"
    node_class: str = ""
    pool: str = "default"
    runtimes: str = "runc"


A100 = Gpu("nvidia", "NVIDIA A100-SXM4-80GB", 8, 81920, True, cc="8.0")
H100 = Gpu("nvidia", "NVIDIA H100 80GB HBM3", 8, 81559, True, cc="9.0", power_w=700,
           cores_clock=1980, memory_clock=2619)
P100 = Gpu("nvidia", "Tesla P100-PCIE-16GB", 2, 16280, True, cc="6.0", power_w=250,
           cores_clock=1328, memory_clock=715)

MIXED: tuple[NodeSpec, ...] = (
    NodeSpec("gpu-a100-01", "127.0.0.11", 128, 2450, 1_031_168, A100, runtimes="runc,nvidia"),
    NodeSpec("gpu-h100-01", "127.0.0.12", 112, 2000, 2_063_360, H100, runtimes="runc,nvidia"),
    NodeSpec("gpu-p100-01", "127.0.0.13", 32, 2200, 257_792, P100, engines="llamacpp",
             models="llama3-8b", runtimes="runc,nvidia"),
    NodeSpec("gpu-mi300x-01", "127.0.0.14", 192, 2400, 2_063_360,
             Gpu("amd", "AMD Instinct MI300X", 8, 196_608, False), engines="vllm,llamacpp"),
    NodeSpec("gpu-dcu-01", "127.0.0.15", 64, 2500, 515_584,
             Gpu("hygon", "Hygon DCU Z100L", 8, 32_768, False), engines="vllm"),
    NodeSpec("npu-ascend-01", "127.0.0.16", 192, 2600, 1_031_168,
             Gpu("ascend", "Ascend 910B", 8, 65_536, False), engines="vllm",
             models="Qwen2.5-7B-Instruct"),
    NodeSpec("gpu-musa-01", "127.0.0.17", 64, 2400, 515_584,
             Gpu("musa", "MTT S4000", 8, 49_152, False), engines="vllm,llamacpp"),
    NodeSpec("cpu-01", "127.0.0.18", 32, 2600, 128_896, None, engines="llamacpp",
             models="SmolLM2-135M-Instruct"),
)


def node_id(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


def build_node(spec: NodeSpec) -> Json:
    """The full Node JSON, as `GET /v1/node/:id` returns it."""
    compute = spec.cores * spec.mhz
    attributes = {
        "cpu.arch": "amd64", "cpu.frequency": str(spec.mhz), "cpu.modelname": "AMD EPYC 7763",
        "cpu.numcores": str(spec.cores), "cpu.reservablecores": str(spec.cores),
        "cpu.totalcompute": str(compute), "cpu.usablecompute": str(compute),
        "memory.totalbytes": str(spec.memory_mb * 1024 * 1024),
        "kernel.name": "linux", "kernel.version": "6.1.0-27-amd64", "kernel.arch": "x86_64",
        "os.name": "debian", "os.version": "12", "os.signals": SIGNALS,
        "unique.hostname": spec.name, "unique.network.ip-address": spec.ip,
        "unique.storage.volume": "/dev/nvme0n1p2", "unique.storage.bytestotal": "3840755982336",
        "unique.storage.bytesfree": "3500000000000",
        "nomad.version": "1.6.3", "nomad.revision": "e0497bff14378d68cad76a801cc0eba93ce05039",
        "nomad.advertise.address": f"{spec.ip}:4646", "nomad.service_discovery": "true",
        "consul.version": "1.8.7", "consul.revision": "4e9b2b3a", "consul.server": "false",
        "consul.datacenter": spec.datacenter, "consul.sku": "oss",
        "driver.docker": "1", "driver.docker.version": "24.0.7",
        "driver.docker.runtimes": spec.runtimes, "driver.docker.volumes.enabled": "true",
        "driver.docker.privileged.enabled": "true", "driver.docker.bridge_ip": "172.17.0.1",
        "driver.docker.os_type": "linux",
    }
    meta = {"connect.sidecar_image": "envoyproxy/envoy:v${NOMAD_envoy_version}",
            "connect.log_level": "info", "connect.proxy_concurrency": "1",
            "connect.gateway_image": "envoyproxy/envoy:v${NOMAD_envoy_version}"}
    meta.update(agent_meta(spec))
    devices = [_nvidia_device(spec.name, spec.gpu)] if spec.gpu and spec.gpu.plugin else []
    driver_attributes = {k[len("driver.docker."):]: v for k, v in attributes.items()
                         if k.startswith("driver.docker.")}
    return {
        "ID": node_id(spec.name), "SecretID": "", "Datacenter": spec.datacenter,
        "Name": spec.name, "CgroupParent": "/nomad", "HTTPAddr": f"{spec.ip}:4646",
        "TLSEnabled": False, "Attributes": attributes,
        "NodeResources": {
            "Cpu": {"CpuShares": compute, "TotalCpuCores": spec.cores,
                    "ReservableCpuCores": list(range(spec.cores))},
            "Processors": {"Topology": None},
            "Memory": {"MemoryMB": spec.memory_mb},
            "Disk": {"DiskMB": 3_338_000},
            "Devices": devices or None,
            "NodeNetworks": [{"Mode": "host", "Device": "lo", "MacAddress": "",
                              "Speed": 1000, "Addresses": [
                                  {"Family": "ipv4", "Alias": "default", "Address": spec.ip,
                                   "ReservedPorts": "", "Gateway": ""}]}],
            "Networks": [{"Mode": "host", "Device": "lo", "CIDR": f"{spec.ip}/32",
                          "IP": spec.ip, "Hostname": "", "MBits": 1000, "DNS": None,
                          "ReservedPorts": None, "DynamicPorts": None, "CNI": None}],
            "MinDynamicPort": 20000, "MaxDynamicPort": 32000,
        },
        "ReservedResources": {"Cpu": {"CpuShares": 0, "ReservedCpuCores": None},
                              "Memory": {"MemoryMB": 0}, "Disk": {"DiskMB": 0},
                              "Networks": {"ReservedHostPorts": ""}},
        "Links": {"consul": f"{spec.datacenter}.{spec.name}"},
        "Meta": meta, "NodeClass": spec.node_class, "NodePool": spec.pool,
        "ComputedClass": "", "DrainStrategy": None, "SchedulingEligibility": "eligible",
        "Status": "ready", "StatusDescription": "", "IdentitySigningKeyID": "",
        "StatusUpdatedAt": _EPOCH_NS // 1_000_000_000,
        "Events": [{"Message": "Node registered", "Subsystem": "Cluster", "Details": None,
                    "Timestamp": _EPOCH_RFC, "CreateIndex": 0}],
        "Drivers": {"docker": {"Attributes": driver_attributes, "Detected": True, "Healthy": True,
                               "HealthDescription": "Healthy", "UpdateTime": _EPOCH_RFC}},
        "CSIControllerPlugins": None, "CSINodePlugins": None,
        "HostVolumes": {"models": {"Name": "models", "Path": "/srv/models", "ReadOnly": False,
                                   "ID": ""}},
        "GCVolumesOnNodeGC": False, "HostNetworks": None, "LastDrain": None,
        "NodeMaxAllocs": 0, "LastMissedHeartbeatIndex": 0, "LastAllocUpdateIndex": 0,
        "CreateIndex": 0, "ModifyIndex": 0,
    }


def agent_meta(spec: NodeSpec) -> dict[str, str]:
    """The dynamic node metadata our node agent publishes (contract: exactly these keys)."""
    meta = {"heteroflow.agent": "1", "heteroflow.engines": spec.engines,
            "heteroflow.models": spec.models,
            # calm load figures (heteroflow_contracts/load.py); "-1": no GPU reading
            "heteroflow.load.cpu": "12", "heteroflow.load.memory": "30",
            "heteroflow.load.gpu_temp": "-1" if spec.gpu is None else "45"}
    if spec.gpu is None:
        meta["heteroflow.gpu.count"] = "0"
        return meta
    meta.update({"heteroflow.gpu.vendor": spec.gpu.vendor,
                 "heteroflow.gpu.count": str(spec.gpu.count),
                 "heteroflow.gpu.model": spec.gpu.model,
                 "heteroflow.gpu.memory_mb": str(spec.gpu.memory_mb)})
    if spec.gpu.cc is not None:
        meta["heteroflow.gpu.cc"] = spec.gpu.cc
    return meta


def _nvidia_device(name: str, gpu: Gpu) -> Json:
    def attr(value: int | str, unit: str = "") -> Json:
        is_int = isinstance(value, int)
        return {"Float": None, "Int": value if is_int else None,
                "String": None if is_int else value, "Bool": None, "Unit": unit}

    instances = [{"ID": "GPU-" + str(uuid.uuid5(_NS, f"{name}/gpu/{i}")), "Healthy": True,
                  "HealthDescription": "",
                  "Locality": {"PciBusID": f"00000000:{0x07 + i * 0x10:02X}:00.0"}}
                 for i in range(gpu.count)]
    return {"Vendor": "nvidia", "Type": "gpu", "Name": gpu.model, "Instances": instances,
            "Attributes": {
                "memory": attr(gpu.memory_mb, "MiB"), "power": attr(gpu.power_w, "W"),
                "bar1": attr(131072, "MiB"), "driver_version": attr("550.54.15"),
                "cores_clock": attr(gpu.cores_clock, "MHz"),
                "memory_clock": attr(gpu.memory_clock, "MHz"),
                "pci_bandwidth": attr(31508, "MB/s"), "display_state": attr("Disabled"),
                "persistence_mode": attr("Enabled")}}


def mixed_fleet() -> list[Json]:
    """The eight-node heterogeneous fleet, read from the JSON fixtures."""
    return [json.loads(path.read_text()) for path in sorted(FIXTURES.glob("*.json"))]


def gpu_fleet(n_nodes: int = 200, gpus_per_node: int = 8) -> list[Json]:
    """A homogeneous fleet of 8x A100 80 GB nodes for scale tests."""
    gpu = Gpu("nvidia", A100.model, gpus_per_node, A100.memory_mb, True, cc="8.0")
    return [build_node(NodeSpec(f"gpu-a100-{i:03d}", f"127.1.{i // 250}.{i % 250 + 1}", 128,
                                2450, 1_031_168, gpu, runtimes="runc,nvidia"))
            for i in range(n_nodes)]


def write_fixtures(folder: Path = FIXTURES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for spec in MIXED:
        path = folder / f"{spec.name}.json"
        path.write_text(json.dumps(build_node(spec), indent=2, sort_keys=False) + "\n")
