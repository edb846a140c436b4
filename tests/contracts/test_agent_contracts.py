"""Agent <-> bridge JSON, checked on both sides: the agent's heartbeat (built by the agent's
own code from a static inventory and a scanned folder with real model files) against the
bridge's ``Heartbeat`` schema, the bridge's answer against the agent's reader, the task
state report, and the bridge's start, sleep and wake calls against the agent's API schema.
The JSON fixtures here are what both sides parse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent_plugin.api.schemas import RemoteSleepIn, RestartIn, StartTaskIn
from agent_plugin.identity import load_identity
from agent_plugin.lifecycle import SLEEP_APIS
from agent_plugin.report.loop import build_heartbeat
from agent_plugin.report.shapes import (
    REPORTED_STATES,
    HeartbeatAnswer,
    HeartbeatBody,
    TaskStateReport,
)
from agent_plugin.report.survey import Surveyor
from agent_plugin.settings import AgentSettings
from bridge.agents.shapes import RemoteEngine, RestartPolicy, StartTask
from bridge.api import schemas as bridge_schemas
from tests.support.agent_helpers import GPU_FIXTURES
from tests.support.model_factory import make_hf_folder, write_gguf

HERE = Path(__file__).resolve().parent


def fixture(name: str) -> Any:
    return json.loads((HERE / name).read_text())


def wire(data: dict[str, Any]) -> Any:
    return json.loads(json.dumps(data))  # exactly what goes over HTTP


@pytest.fixture
def settings(tmp_path: Path) -> AgentSettings:
    models = tmp_path / "models"
    models.mkdir()
    write_gguf(models / "tiny.gguf")
    make_hf_folder(models, "SmolLM2-135M-Instruct", "smollm2-135m-instruct.config.json",
                   shards=1)
    return AgentSettings(home=tmp_path / "home", model_roots=(models,), gpu_vendors=("amd",),
                         tool_path=str(tmp_path), sysfs_root=tmp_path,
                         gpu_inventory=GPU_FIXTURES / "inventory_dev.json")


class TestHeartbeat:
    async def test_what_the_agent_builds_is_what_the_bridge_takes(
            self, settings: AgentSettings) -> None:
        identity = load_identity(settings)
        survey = await Surveyor(settings).survey()
        assert {m.format for m in survey.models} == {"gguf", "huggingface"}
        assert "amd" in survey.detection.skipped  # a reason, not an absence
        for first in (True, False):
            body = build_heartbeat(identity, survey, agent_url="http://127.0.0.1:3334",
                                   nomad_node_id=None, with_secret=first, with_models=first)
            taken = bridge_schemas.Heartbeat.model_validate(wire(body.to_json()))
            assert taken.node_id == identity.node_id and len(taken.gpus) == 3
            assert (taken.models is None) is not first
            assert (taken.agent_secret == identity.secret) is first

    def test_the_fixture_parses_on_both_sides(self) -> None:
        data = fixture("heartbeat.json")
        taken = bridge_schemas.Heartbeat.model_validate(data)
        assert taken.models is not None and len(taken.models) == 2
        assert HeartbeatBody.from_json(data).to_json() == data

    def test_no_key_on_one_side_only(self) -> None:
        data = fixture("heartbeat.json")
        assert set(data) == set(bridge_schemas.Heartbeat.model_fields)
        assert set(data["gpus"][0]) == set(bridge_schemas.GpuIn.model_fields)
        assert set(data["models"][0]) == set(bridge_schemas.ModelIn.model_fields)

    def test_the_bridges_answer(self) -> None:
        answer = bridge_schemas.HeartbeatOut(node_id="gpu-01", status="online",
                                             interval_seconds=30)
        read = HeartbeatAnswer.from_json(wire(answer.model_dump(mode="json")))
        assert (read.node_id, read.status, read.interval_seconds) == ("gpu-01", "online", 30)


class TestTaskState:
    def test_the_fixture_round_trips_on_the_agent_side(self) -> None:
        reports = fixture("task_state.json")
        assert {r["state"] for r in reports} == set(REPORTED_STATES)
        for data in reports:
            assert TaskStateReport.from_json(data).to_json() == data

    def test_the_bridge_takes_it(self) -> None:
        schema = getattr(bridge_schemas, "TaskStateReport", None)
        if schema is None:
            pytest.skip("bridge.api.schemas has no TaskStateReport yet")
        for data in fixture("task_state.json"):
            schema.model_validate(data)
        assert set(fixture("task_state.json")[0]) == set(schema.model_fields)

    def test_the_bridge_knows_every_state_the_agent_sends(self) -> None:
        from bridge.services.task_ops import REPORTED

        assert set(REPORTED) == set(REPORTED_STATES)


class TestSleepCalls:
    def test_the_bridges_calls_fit_the_agents_api(self) -> None:
        from bridge.domain.engines import ENGINES

        for data in fixture("agent_sleep_request.json"):
            assert RemoteSleepIn.model_validate(data).model_dump() == data
            assert wire(RemoteEngine(**data).to_json()) == data
        assert set(RemoteEngine.__dataclass_fields__) == set(RemoteSleepIn.model_fields)
        named = {spec.sleep_api for spec in ENGINES.values()} - {None}
        assert named <= set(SLEEP_APIS), "an engine's sleep API has no agent driver"


class TestStartTask:
    """``POST /v1/tasks``: what the bridge's local placement sends to start an engine."""

    def bridges_body(self) -> dict[str, Any]:
        start = StartTask(
            task_id="task-5f2a9c-r0-tg-1764000000000000000-ab12",
            argv=("/usr/bin/python3", "-m", "vllm.entrypoints.openai.api_server", "--model",
                  "/models/Qwen2.5-7B-Instruct", "--served-model-name", "qwen2.5-7b",
                  "--port", "24817", "--enable-sleep-mode"),
            env={"VLLM_SERVER_DEV_MODE": "1"}, port=24817, gpu_vendor="nvidia",
            gpu_ids=("0", "1"), restart=RestartPolicy(attempts=2, delay_seconds=5.0),
            health_path="/health", engine="vllm", sleep_api="vllm", idle_timeout_minutes=30)
        return wire(start.to_json())

    def test_the_bridge_builds_the_fixture(self) -> None:
        assert self.bridges_body() == fixture("agent_start_task.json")

    def test_the_agent_takes_it_as_sent(self) -> None:
        data = fixture("agent_start_task.json")
        assert StartTaskIn.model_validate(data).model_dump() == data

    def test_no_field_on_one_side_only(self) -> None:
        data = self.bridges_body()
        assert set(data) == set(StartTaskIn.model_fields)
        assert set(data["restart"]) == set(RestartIn.model_fields)

    def test_what_the_bridge_may_send_the_agent_takes(self) -> None:
        from bridge.domain.engines import ENGINES
        from heteroflow_contracts.vendors import VENDORS

        body = self.bridges_body()
        for vendor in (None, *VENDORS):
            for sleep_api in {spec.sleep_api for spec in ENGINES.values()}:
                ids = ["0"] if vendor else []
                StartTaskIn.model_validate(body | {"gpu_vendor": vendor, "gpu_ids": ids,
                                                   "sleep_api": sleep_api})
        for engine in ENGINES:
            StartTaskIn.model_validate(body | {"engine": engine.value})
