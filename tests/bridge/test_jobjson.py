"""The job JSON the bridge registers is the job its HCL describes.

Both renderings of every golden case (and a few more shapes) are read the way Nomad reads
them, by the double: the HCL through its parser, the JSON through its API decoder, then
both canonicalized, and compared whole.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.domain.models import PortMapping
from bridge.nomad.jobjson import job_json
from bridge.nomad.jobspec import File, JobspecContext, render
from tests.bridge.test_jobspec import CASES
from tests.support.jobspec_render import rendered_context
from tests.support.nomad_double.canonical import canonicalize
from tests.support.nomad_double.hcl import parse_job
from tests.support.nomad_double.schema import decode

MORE: dict[str, dict[str, Any]] = {
    "static-port": dict(ports=[PortMapping(container=8000, host=28000)]),
    "odd-strings": dict(image='reg.example/a"b${x}%{y}\\z:1', model_name="m${NOMAD_ALLOC_ID}"),
}


def same_job(hcl: str, job: dict[str, Any]) -> None:
    from_hcl = canonicalize(parse_job(hcl))
    from_json = canonicalize(decode("Job", json.loads(json.dumps(job))))
    assert json.dumps(from_json, sort_keys=True, indent=1) == json.dumps(
        from_hcl, sort_keys=True, indent=1)


@pytest.mark.parametrize("case", sorted(CASES) + sorted(MORE))
async def test_json_is_the_hcl_job(case: str) -> None:
    context = await rendered_context(**{**CASES, **MORE}[case])
    same_job(render(context), job_json(context))


async def test_every_block_other_features_add_is_in_both() -> None:
    # rollouts (max_parallel), autoscaling (scaling), silver shares (isolation), tensor
    # parallel (p2p affinity): each renders in the template, so each must be in the JSON.
    base = await rendered_context(**CASES["vllm-nvidia-tp2"])
    assert base.device is not None
    device = base.device.model_copy(update={"isolated": True, "prefer_p2p": True})
    context = base.model_copy(update={"max_parallel": 2, "scaling": (1, 4), "device": device})
    same_job(render(context), job_json(context))


async def with_file(data: str) -> JobspecContext:
    base = await rendered_context(**CASES["mindie-ascend"])
    return base.model_copy(update={"files": (File(name="f.yaml", data=data),),
                                   "region": "eu", "static_port": 9000})


@pytest.mark.parametrize("data", ["a: 1\n", "{{ x }} and ${y} %{z}\nno newline",
                                  "a:\n  b: 1\n"])
async def test_template_files_are_the_same(data: str) -> None:
    context = await with_file(data)
    same_job(render(context), job_json(context))


async def test_json_keeps_a_file_whose_every_line_is_indented() -> None:
    # A <<- heredoc strips the indentation its lines share, so the HCL (now display only)
    # loses it; the JSON, which is what gets registered, carries the file as it is.
    context = await with_file("  x: 1\n  y: 2\n")
    task = job_json(context)["TaskGroups"][0]["Tasks"][0]
    assert task["Templates"][0]["EmbeddedTmpl"] == "  x: 1\n  y: 2\n\n"
