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


@pytest.mark.parametrize("vendor", list(GpuVendor))
async def test_every_vendor_asks_for_its_plugin_devices(vendor: GpuVendor) -> None:
    """heteroflow-gpu reports "<vendor>/gpu" devices: Nomad picks distinct ones and the
    plugin's Reserve maps their files and sets the visible-devices variables, so the job
    names no device file, no node's "first N devices" and no such variable."""
    engine = {GpuVendor.ASCEND: Engine.MINDIE, GpuVendor.MUSA: Engine.VLLM_MTT,
              GpuVendor.NVIDIA: Engine.VLLM, GpuVendor.AMD: Engine.VLLM,
              GpuVendor.HYGON: Engine.VLLM}.get(vendor, Engine.TRANSFORMERS)
    job = job_of(await rendered(engine=engine, gpu_type=vendor, gpu_required=2,
                                parallelism=Parallelism.TENSOR_PARALLEL, world_size=2,
                                estimated_gpu_memory_mb=40000))
    task = job["group"][0]['"engine"']["task"][0]['"engine"']
    device = task["resources"][0]["device"][0][f'"{vendor.value}/gpu"']
    assert device["count"] == 2
    assert unq(device["constraint"][0]["value"]) == "20000 MiB"
    assert "devices" not in task["config"][0]
    rules = {unq(c["attribute"]) for c in job.get("constraint") or []}
    assert not rules & {"${meta.heteroflow.gpu.vendor}", "${meta.heteroflow.gpu.count}",
                        "${meta.heteroflow.gpu.memory_mb}"}
    env = task.get("env", [{}])[0]
    assert not [k for k in env if k.endswith("VISIBLE_DEVICES")]


async def test_ascend_keeps_its_engine_config() -> None:
    job = job_of(await rendered(**CASES["mindie-ascend"]))
    task = job["group"][0]['"engine"']["task"][0]['"engine"']
    assert task["resources"][0]["device"][0]['"ascend/gpu"']["count"] == 4
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
