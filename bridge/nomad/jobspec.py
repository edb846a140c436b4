"""TaskGroup -> JobspecContext (frozen, validated) -> HCL2 text from jobspecs/*.j2.

The context is the only thing templates see; each field is validated here, and every string
is quoted by the ``s``/``l`` filters (bridge.nomad.hcl), so no user input can inject HCL.
Placement rules of the seed become Nomad rules:

| seed step              | Nomad rule                                                    |
|------------------------|---------------------------------------------------------------|
| 1 GPU type filter      | ``device "<vendor>/gpu"`` (the heteroflow-gpu device plugin)   |
| 2 VRAM filter          | device constraint ``${device.attr.memory} >= N MiB``           |
| 3 model locality       | affinity ``${meta.heteroflow.models} set_contains <model>``    |
| 4 engine preference    | affinity ``${meta.heteroflow.engines} set_contains <engine>``  |
| 6 binpack / spread     | Nomad binpacks by default; ``spread`` for independent replicas |
| priority / QoS         | job ``priority`` (gold 80, silver 50, bronze 20)              |
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field

from agent_plugin.nomad_device.reservation import VENDOR_DEVICES
from bridge.domain.engines import Launch
from bridge.domain.models import GpuVendor, QoS, TaskGroup
from bridge.nomad.hcl import hcl_comment, hcl_heredoc_safe, hcl_list, hcl_string, hcl_target

IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
JOB_ID = r"^hf-[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
PRIORITY = {QoS.GOLD: 80, QoS.SILVER: 50, QoS.BRONZE: 20}
# Node metadata the agent publishes (a contract with agent_plugin and the Nomad double).
META_CC = "${meta.heteroflow.gpu.cc}"
META_ENGINES = "${meta.heteroflow.engines}"
META_MODELS = "${meta.heteroflow.models}"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Rule(_Frozen):
    attribute: Annotated[str, Field(pattern=r"^\$\{(meta|attr|node|device)\.[A-Za-z0-9_.-]+\}$")]
    operator: Literal["=", "!=", "<", "<=", ">", ">=", "regexp", "version", "semver",
                      "set_contains", "set_contains_any", "is_set", "is_not_set"]
    value: str


class Preference(Rule):
    weight: Annotated[int, Field(ge=-100, le=100)]


class Mount(_Frozen):
    source: Annotated[str, Field(pattern=r"^/[^\x00]*$")]
    target: Annotated[str, Field(pattern=r"^/[^\x00]*$")]
    readonly: bool = True


class DeviceRequest(_Frozen):
    name: Annotated[str, Field(pattern=r"^[a-z0-9_-]+(/[a-z0-9_-]+){0,2}$")]
    count: Annotated[int, Field(ge=1, le=64)]
    min_memory_mib: Annotated[int, Field(ge=1)] | None = None


class Check(_Frozen):
    type: Literal["http", "tcp"]
    path: str
    interval_s: Annotated[int, Field(ge=1)]
    timeout_s: Annotated[int, Field(ge=1)]
    failures: Annotated[int, Field(ge=1)]


class File(_Frozen):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")]
    data: str


class JobspecContext(_Frozen):
    job_id: Annotated[str, Field(pattern=JOB_ID)]
    task_group_id: Annotated[str, Field(pattern=r"^tg-[0-9]+-[0-9a-f]{4}$")]
    task_group_name: Annotated[str, Field(pattern=LABEL)]
    namespace: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
    region: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")] | None
    datacenters: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9_*?.-]{1,128}$")], ...]
    qos: QoS
    priority: Annotated[int, Field(ge=1, le=100)]
    meta: dict[Annotated[str, Field(pattern=IDENT)], str]
    constraints: tuple[Rule, ...]
    affinities: tuple[Preference, ...]
    spread: bool
    count: Annotated[int, Field(ge=0, le=512)]
    container_port: Annotated[int, Field(ge=1, le=65535)]
    static_port: Annotated[int, Field(ge=1, le=65535)] | None
    service_name: Annotated[str, Field(pattern=r"^hf-[a-z0-9-]{1,63}$")]
    service_tags: tuple[str, ...]
    check: Check
    image: str
    entrypoint: tuple[str, ...] | None
    args: tuple[str, ...]
    env: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str]
    files: tuple[File, ...]
    mounts: tuple[Mount, ...]
    vendor: GpuVendor | None
    device: DeviceRequest | None
    vram_note: str
    cpu_mhz: Annotated[int, Field(ge=100)]
    memory_mb: Annotated[int, Field(ge=128)]
    shm_size_bytes: int | None
    healthy_deadline_s: Annotated[int, Field(ge=30)]


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
    device_files: tuple[str, ...] = ()
    min_compute_capability: tuple[int, int] | None = None


def job_id_for(group: TaskGroup) -> str:
    return f"hf-{group.name}"


def service_name_for(group: TaskGroup) -> str:
    return f"hf-{group.name}"


def build_context(
    group: TaskGroup, placement: Placement, *, version: str, namespace: str,
    region: str | None, datacenters: tuple[str, ...], count: int,
) -> JobspecContext:
    constraints: list[Rule] = []
    vendor = placement.vendor
    device = None
    if vendor is not None:
        # heteroflow-gpu reports every vendor's accelerators as "<vendor>/gpu" devices, so
        # Nomad hands out distinct devices and its Reserve maps their files and variables.
        device = DeviceRequest(name=f"{vendor.value}/gpu", count=placement.gpus_per_task,
                               min_memory_mib=placement.vram_per_gpu_mb)
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
        spread=group.parallelism.value in ("split", "data_parallel"), count=count,
        container_port=port.container, static_port=port.host,
        service_name=service_name_for(group),
        service_tags=("heteroflow", f"tg={group.id}", f"model={group.model_name}",
                      f"version={version}", f"engine={placement.engine}"),
        check=Check(type="http" if hc.type == "http" else "tcp", path=hc.path,
                    interval_s=hc.interval_seconds, timeout_s=hc.timeout_seconds,
                    failures=hc.unhealthy_threshold),
        image=group.image, entrypoint=placement.launch.entrypoint,
        args=placement.launch.args, env=_without_reserved(placement.launch.env, vendor),
        files=files, mounts=(placement.model_mount,), vendor=vendor,
        device=device, vram_note=placement.vram_note,
        cpu_mhz=2000 * max(1, gpus), memory_mb=max(4096, 8192 * max(1, gpus)),
        shm_size_bytes=(8 << 30) if gpus > 1 else None,
        healthy_deadline_s=900,
    )


def render(context: JobspecContext, template: str = "inference.nomad.hcl.j2") -> str:
    return _environment().get_template(template).render(c=context)


def templates_dir() -> Path:
    """jobspecs/ beside the package in a checkout, or the copy inside an installed wheel."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "jobspecs", here.parents[1] / "_jobspecs"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("jobspecs templates not found")


@cache
def _environment() -> jinja2.Environment:
    # HCL, not HTML: autoescape does not apply; values are quoted by the s/l filters.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined, autoescape=False,  # noqa: S701
        keep_trailing_newline=True,
        trim_blocks=False, lstrip_blocks=False,
    )
    env.filters["s"] = hcl_string
    env.filters["l"] = hcl_list
    env.filters["heredoc"] = hcl_heredoc_safe
    env.filters["target"] = hcl_target
    env.filters["comment"] = hcl_comment
    return env


def _without_reserved(env: dict[str, str], vendor: GpuVendor | None) -> dict[str, str]:
    """The launch's variables less the visible-devices ones: the device plugin's Reserve
    sets those for the devices Nomad actually gave, and a jobspec value would override them
    with the node's first devices."""
    rules = VENDOR_DEVICES.get(vendor.value) if vendor is not None else None
    reserved = {name for name, _ in rules.env} if rules is not None else set()
    return {k: v for k, v in env.items() if k not in reserved}
