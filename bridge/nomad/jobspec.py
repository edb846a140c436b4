"""JobspecContext (frozen, validated) -> HCL2 text from jobspecs/*.j2.

The context is the only thing templates see; each field is validated here, and every string
is quoted by the ``s``/``l`` filters (bridge.nomad.hcl), so no user input can inject HCL.
What the context holds is decided by placement (bridge.placement.nomad.job).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field

from bridge.domain.models import GpuVendor, QoS, TaskGroup
from bridge.nomad.hcl import hcl_comment, hcl_heredoc_safe, hcl_list, hcl_string, hcl_target

IDENT = r"^[A-Za-z_][A-Za-z0-9_]*$"
LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
JOB_ID = r"^hf-[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


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
    # silver: only shares the plugin marks as isolated (docs/gpu-sharing.md, "Tiers")
    isolated: bool = False
    # tensor parallel: prefer a group whose GPUs share a PCIe switch (docs/gpu-sharing.md)
    prefer_p2p: bool = False


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
    max_parallel: Annotated[int, Field(ge=1, le=512)] = 1
    # (min, max) of a `scaling` block with enabled = false: Nomad enforces the bounds on
    # every scale and keeps the scaling events; the bridge's policy loop does the scaling.
    scaling: tuple[int, int] | None = None


def job_id_for(group: TaskGroup) -> str:
    return f"hf-{group.name}"


def service_name_for(group: TaskGroup) -> str:
    return f"hf-{group.name}"


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
