"""What the bridge decided for a group (a Placement) becomes the job's JobspecContext.

Placement rules of the seed become Nomad rules:

| seed step              | Nomad rule                                                    |
|------------------------|---------------------------------------------------------------|
| 1 GPU type filter      | ``device "<vendor>/gpu"`` (the heteroflow-gpu device plugin)   |
| 2 VRAM filter          | device constraint ``${device.attr.memory} >= N MiB``           |
| QoS silver / bronze    | ``device "<vendor>/gpu-share"`` (docs/gpu-sharing.md)          |
| 3 model locality       | affinity ``${meta.heteroflow.models} set_contains <model>``    |
| 4 engine preference    | affinity ``${meta.heteroflow.engines} set_contains <engine>``  |
| 5 load thresholds      | ``${meta.heteroflow.load.*} <= limit`` (published by the agent) |
| 6 binpack / spread     | Nomad binpacks by default; ``spread`` for independent replicas  |
|                        | or when the service's ``co_schedule.placement`` is ``spread``   |
| 6 topology             | device affinity ``${device.attr.p2p} = pcie-switch`` (TP)       |
| priority / QoS         | job ``priority`` (gold 80, silver 50, bronze 20)              |
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from bridge.domain.engines import Launch
from bridge.domain.models import GpuVendor, QoS, TaskGroup
from bridge.nomad.jobspec import (
    Check,
    DeviceRequest,
    File,
    JobspecContext,
    Mount,
    Preference,
    Rule,
    job_id_for,
    service_name_for,
)
from heteroflow_contracts.gpu_sharing import CoSchedule
from heteroflow_contracts.load import LoadLimits, meta_constraints

PRIORITY = {QoS.GOLD: 80, QoS.SILVER: 50, QoS.BRONZE: 20}
# Node metadata the agent publishes (a contract with agent_plugin and the Nomad double).
META_CC = "${meta.heteroflow.gpu.cc}"
META_ENGINES = "${meta.heteroflow.engines}"
META_MODELS = "${meta.heteroflow.models}"


@dataclass(frozen=True, slots=True)
class Placement:
    """What the bridge decided before Nomad places: engine launch, vendor, VRAM per GPU."""

    launch: Launch
    vendor: GpuVendor | None  # None: CPU only
    gpus_per_task: int
    vram_per_gpu_mb: int | None
    vram_note: str
    engine: str
    model_in_container: str
    model_mount: Mount
    min_compute_capability: tuple[int, int] | None = None
    device_type: str = "gpu"  # "gpu-share" for a silver or bronze share
    isolated: bool = False  # silver


def build_context(
    group: TaskGroup, placement: Placement, *, version: str, namespace: str,
    region: str | None, datacenters: tuple[str, ...], count: int,
    load: LoadLimits | None = None,
) -> JobspecContext:
    # seed step 5: a node whose agent publishes a figure above a threshold takes nothing new
    constraints: list[Rule] = [Rule(attribute=a, operator=o, value=v)
                               for a, o, v in meta_constraints(load)] if load else []
    vendor = placement.vendor
    device = None
    if vendor is not None:
        # heteroflow-gpu reports every vendor's accelerators as "<vendor>/gpu" devices, so
        # Nomad hands out distinct devices and the plugin's Reserve sets their files and
        # visible-devices variables (docs/device-plugin.md); the job sets neither.
        # Silver and bronze ask for one "<vendor>/gpu-share" (docs/gpu-sharing.md).
        device = DeviceRequest(name=f"{vendor.value}/{placement.device_type}",
                               count=placement.gpus_per_task,
                               min_memory_mib=placement.vram_per_gpu_mb,
                               isolated=placement.isolated,
                               prefer_p2p=placement.gpus_per_task > 1)
    if vendor is GpuVendor.NVIDIA and placement.min_compute_capability:
        major, minor = placement.min_compute_capability
        constraints.append(Rule(attribute=META_CC, operator="version",
                                value=f">= {major}.{minor}"))
    model_key = PurePosixPath(group.model_path).name
    affinities = (
        Preference(attribute=META_MODELS, operator="set_contains", value=model_key, weight=50),
        Preference(attribute=META_ENGINES, operator="set_contains", value=placement.engine,
                   weight=25),
    )
    hc = group.health_check
    port = group.ports[0]
    files = tuple(File(name=PurePosixPath(path).name, data=data)
                  for path, data in placement.launch.files.items())
    gpus = placement.gpus_per_task
    return JobspecContext(
        job_id=job_id_for(group), task_group_id=group.id, task_group_name=group.name,
        namespace=namespace, region=region, datacenters=datacenters, qos=group.qos,
        priority=PRIORITY[group.qos],
        meta={"hf_managed": "true", "hf_task_group_id": group.id,
              "hf_task_group": group.name, "hf_model": group.model_name,
              "hf_version": version, "hf_engine": placement.engine},
        constraints=tuple(constraints), affinities=affinities,
        spread=group.parallelism.value in ("split", "data_parallel")
        or CoSchedule.parse(group.co_schedule).placement == "spread", count=count,
        container_port=port.container, static_port=port.host,
        service_name=service_name_for(group),
        service_tags=("heteroflow", f"tg={group.id}", f"model={group.model_name}",
                      f"version={version}", f"engine={placement.engine}"),
        check=Check(type="http" if hc.type == "http" else "tcp", path=hc.path,
                    interval_s=hc.interval_seconds, timeout_s=hc.timeout_seconds,
                    failures=hc.unhealthy_threshold),
        image=group.image, entrypoint=placement.launch.entrypoint,
        args=placement.launch.args, env=dict(placement.launch.env), files=files,
        mounts=(placement.model_mount,), vendor=vendor,
        device=device, vram_note=placement.vram_note,
        cpu_mhz=2000 * max(1, gpus), memory_mb=max(4096, 8192 * max(1, gpus)),
        shm_size_bytes=(8 << 30) if gpus > 1 else None,
        # A rollout in progress (domain/versions.py) sets how many replicas Nomad replaces
        # at once and how long a new one may take to load its model.
        healthy_deadline_s=int((group.rollout or {}).get("healthy_deadline_s", 900)),
        max_parallel=_max_parallel(group, count), scaling=scaling_bounds(group, count),
    )


def _max_parallel(group: TaskGroup, count: int) -> int:
    rollout = group.rollout or {}
    if rollout.get("strategy") == "recreate":
        return max(1, count)  # every allocation replaced at once: stop all, start all
    return max(1, int(rollout.get("max_parallel", 1)))


def scaling_bounds(group: TaskGroup, count: int) -> tuple[int, int] | None:
    """The bounds Nomad is to enforce for an autoscaled group: its min/max, widened to a
    window's count outside its windows and to the count it has now (Nomad refuses a job
    whose count lies outside its own scaling block); max 0 (no limit) becomes 512."""
    if not group.auto_scale:
        return None
    low, high = group.min_replicas, group.max_replicas or 512
    outside = (group.schedule_window or {}).get("outside_replicas")
    if isinstance(outside, int):
        low, high = min(low, outside), max(high, outside)
    return min(low, max(count, 1)), max(high, count)
