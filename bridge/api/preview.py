"""POST /api/v1/task-groups/jobspec-preview: the create form's "what will Nomad run" view."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, text

from bridge.api.http import actor, operation, parse_body, runtime
from bridge.api.schemas import CreateTaskGroup
from bridge.api.task_groups import spec_from_request
from bridge.services.preview import draft_task_group

bp = Blueprint("preview", url_prefix="/api/v1")


@operation(bp, "POST", "/task-groups/jobspec-preview", summary="The Nomad job (HCL2) a "
           "create request would render to; nothing is created", body=CreateTaskGroup,
           response=None, media="text/plain")
async def jobspec_preview(request: Request) -> HTTPResponse:
    body = parse_body(request, CreateTaskGroup)
    spec = spec_from_request(body)
    draft = draft_task_group(spec, actor(request))
    rendered = await runtime(request).placer.render_group(draft, spec.route.version)
    return text(rendered.hcl, headers={"x-heteroflow-engine": rendered.engine.value,
                                       "x-heteroflow-vram": rendered.vram_note},
                content_type="text/plain; charset=utf-8")
