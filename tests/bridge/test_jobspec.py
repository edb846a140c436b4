"""Rendered jobspecs: golden files per engine and vendor, HCL that parses, no injection.

Regenerate the goldens after an intended template change with UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hcl2
import pytest

from bridge.domain.models import Engine, GpuVendor, HealthCheck, PortMapping, QoS
from bridge.domain.topology import Parallelism
from bridge.errors import ValidationFailed
from bridge.placement.nomad.placer import Placer
from bridge.settings import BridgeSettings
from tests.support.factories import make_task_group
from tests.support.jobspec_render import GID, rendered

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "jobspecs"

CASES: dict[str, dict[str, Any]] = {
    "vllm-nvidia-tp2": dict(parallelism=Parallelism.TENSOR_PARALLEL, world_size=2,
                            gpu_required=2, estimated_gpu_memory_mb=30000,
                            idle_timeout_minutes=30),
    "vllm-nvidia-single": dict(estimated_gpu_memory_mb=18000, qos=QoS.SILVER),
    "sglang-nvidia": dict(engine=Engine.SGLANG, image="lmsysorg/sglang:v0.5.4",
                          gpu_type=GpuVendor.NVIDIA),
    "llamacpp-split": dict(engine=Engine.LLAMACPP, image="ghcr.io/ggml-org/llama.cpp:server",
                           model_path="/models/qwen2.5-0.5b-q4_k_m.gguf",
                           parallelism=Parallelism.SPLIT, world_size=3, qos=QoS.BRONZE),
    "llamacpp-cpu": dict(engine=Engine.LLAMACPP, image="ghcr.io/ggml-org/llama.cpp:server",
                         model_path="/models/smollm2.gguf", gpu_required=0,
                         ports=[PortMapping(container=8080, host=8081)]),
    "vllm-amd": dict(gpu_type=GpuVendor.AMD, image="rocm/vllm:latest", gpu_required=2,
                     parallelism=Parallelism.TENSOR_PARALLEL, world_size=2,
                     estimated_gpu_memory_mb=100000),
    "mindie-ascend": dict(engine=Engine.MINDIE, gpu_type=GpuVendor.ASCEND,
                          image="ascendhub/mindie:2.0.RC1", gpu_required=4,
                          parallelism=Parallelism.TENSOR_PARALLEL, world_size=4),
    "vllm-mtt-musa": dict(engine=Engine.VLLM_MTT, gpu_type=GpuVendor.MUSA,
                          image="registry.mthreads.com/mcconline/vllm-musa:v0.4"),
    "tcp-check": dict(health_check=HealthCheck(type="tcp", interval_seconds=5,
                                               timeout_seconds=2, unhealthy_threshold=5)),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_golden(case: str) -> None:
    text = await rendered(**CASES[case])
    path = GOLDEN / f"{case}.hcl"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{case}: rendered jobspec changed; UPDATE_GOLDEN=1"


def job_of(text: str) -> dict[str, Any]:
    parsed = hcl2.loads(text)
    ((label, job),) = parsed["job"][0].items()
    return {"id": label.strip('"'), **job}


def unq(value: Any) -> Any:
    """python-hcl2 keeps string quotes and escapes; undo them to compare with the input."""
    if isinstance(value, str) and value.startswith('"') and value.endswith('"'):
        import json

        return json.loads(value.replace("$${", "${").replace("%%{", "%{"))
    return value


@pytest.mark.parametrize("case", sorted(CASES))
async def test_renders_valid_hcl(case: str) -> None:
    job = job_of(await rendered(**CASES[case]))
    group = job["group"][0]['"engine"']
    task = group["task"][0]['"engine"']
    assert job["id"] == "hf-qwen"
    assert unq(task["driver"]) == "docker"
    assert unq(job["meta"][0]["hf_task_group_id"]) == GID
    service = group["service"][0]
    assert unq(service["name"]) == "hf-qwen"
    assert [unq(t) for t in service["tags"]] == [
        "heteroflow", f"tg={GID}", "model=qwen2.5-7b", "version=v1",
        f"engine={unq(job['meta'][0]['hf_engine'])}"]


async def test_tp_keeps_all_gpus_in_one_task() -> None:
    job = job_of(await rendered(**CASES["vllm-nvidia-tp2"]))
    group = job["group"][0]['"engine"']
    device = group["task"][0]['"engine"']["resources"][0]["device"][0]['"nvidia/gpu"']
    assert group["count"] == 1 and device["count"] == 2
    assert unq(device["constraint"][0]["value"]) == "15000 MiB"


async def test_split_spreads_replicas() -> None:
    job = job_of(await rendered(**CASES["llamacpp-split"]))
    group = job["group"][0]['"engine"']
    assert group["count"] == 3
    assert unq(group["spread"][0]["attribute"]) == "${node.unique.id}"


async def test_non_nvidia_vendor_uses_meta_and_device_files() -> None:
    job = job_of(await rendered(**CASES["mindie-ascend"]))
    rules = {(unq(c["attribute"]), unq(c["operator"]), unq(c["value"]))
             for c in job["constraint"]}
    assert ("${meta.heteroflow.gpu.vendor}", "=", "ascend") in rules
    assert ("${meta.heteroflow.gpu.count}", ">=", "4") in rules
    task = job["group"][0]['"engine"']["task"][0]['"engine"']
    devices = [unq(d["host_path"]) for d in task["config"][0]["devices"]]
    assert "/dev/davinci3" in devices and "/dev/davinci_manager" in devices
    assert "device" not in task["resources"][0]
    assert unq(task["env"][0]["ASCEND_RT_VISIBLE_DEVICES"]) == "0,1,2,3"
    assert "template" in task  # MindIE's config.json


async def test_hostile_values_stay_data() -> None:
    """Quotes, newlines and template sequences in user input cannot change the job."""
    evil = 'x" }\n  task "pwn" { driver = "raw_exec" } #${NOMAD_TOKEN}%{ if true }'
    text = await rendered(command=f"python -m server --flag '{evil}'")
    job = job_of(text)
    task = job["group"][0]['"engine"']["task"][0]['"engine"']
    assert list(job["group"][0]['"engine"']["task"][0]) == ['"engine"']
    entry = [unq(a) for a in task["config"][0]["entrypoint"]]
    assert entry == ["python", "-m", "server", "--flag", evil]
    assert "raw_exec" not in [unq(task["driver"])]
    assert "${NOMAD_TOKEN}" not in text.replace("$${NOMAD_TOKEN}", "")


async def test_model_outside_roots_is_refused_before_rendering() -> None:
    group = make_task_group(id=GID, model_path="/var/run/docker.sock")
    placer = Placer(None, None, BridgeSettings(model_roots=(Path("/models"),)))  # type: ignore[arg-type]
    from bridge.placement.model_paths import check_model_path

    with pytest.raises(ValidationFailed):
        check_model_path(group.model_path, placer.settings.model_roots)
