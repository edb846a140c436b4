"""Heartbeats and task-state reports against a bridge stand-in on loopback: what each
heartbeat carries, bridge outages and refusals, backoff, and the order of task states."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator, Callable

import pytest

from agent_plugin.identity import load_identity
from agent_plugin.report.backoff import Backoff
from agent_plugin.report.bridge import BridgeClient
from agent_plugin.report.loop import ReportLoop
from agent_plugin.report.shapes import TaskStateReport
from agent_plugin.report.survey import Surveyor
from agent_plugin.report.task_states import MAX_FAILED_ATTEMPTS, TaskStateReporter
from agent_plugin.settings import AgentSettings
from tests.support.agent_standins import BridgeStandIn
from tests.support.model_factory import write_gguf


@pytest.fixture
async def client(bridge_standin: BridgeStandIn) -> AsyncIterator[BridgeClient]:
    bridge = BridgeClient(bridge_standin.url, bridge_standin.token)
    yield bridge
    await bridge.aclose()


def make_loop(settings: AgentSettings, bridge: BridgeClient | None,
              **kw: float | None) -> ReportLoop:
    return ReportLoop(identity=load_identity(settings), surveyor=Surveyor(settings),
                      bridge=bridge, nomad=None, agent_url=lambda: "http://127.0.0.1:3334",
                      **kw)  # type: ignore[arg-type]


class TestHeartbeat:
    async def test_secret_and_models_only_when_needed(
            self, agent_settings: Callable[..., AgentSettings], client: BridgeClient,
            bridge_standin: BridgeStandIn) -> None:
        settings = agent_settings()
        write_gguf(settings.model_roots[0] / "tiny-one.gguf")
        loop = make_loop(settings, client)
        assert await loop.report_once()
        first = bridge_standin.heartbeats[-1]
        assert first["agent_secret"] == load_identity(settings).secret
        assert [m["name"] for m in first["models"]] == ["tiny-one"]
        assert len(first["gpus"]) == 3 and first["skipped"] == {}
        assert first["agent_url"] == "http://127.0.0.1:3334"
        assert first["facts"]["hostname"] and first["name"]
        if importlib.util.find_spec("llama_cpp") is not None:
            assert "llamacpp" in first["engines"]

        assert await loop.report_once()
        second = bridge_standin.heartbeats[-1]
        assert second["agent_secret"] is None and second["models"] is None
        assert second["node_id"] == first["node_id"]

        write_gguf(settings.model_roots[0] / "tiny-two.gguf")
        assert await loop.report_once()
        assert [m["name"] for m in bridge_standin.heartbeats[-1]["models"]] == [
            "tiny-one", "tiny-two"]
        assert loop.heartbeats == 3 and loop.last_error is None

    async def test_models_again_after_a_failed_report(
            self, agent_settings: Callable[..., AgentSettings], client: BridgeClient,
            bridge_standin: BridgeStandIn) -> None:
        settings = agent_settings()
        loop = make_loop(settings, client)
        assert await loop.report_once()
        assert bridge_standin.heartbeats[-1]["models"] == []
        write_gguf(settings.model_roots[0] / "late.gguf")
        bridge_standin.fail_with = 503
        assert not await loop.report_once()
        assert "503" in (loop.last_error or "") and "told to fail" in (loop.last_error or "")
        bridge_standin.fail_with = None
        assert await loop.report_once()  # the scan saw no change since; models still go
        assert [m["name"] for m in bridge_standin.heartbeats[-1]["models"]] == ["late"]
        assert await loop.report_once()
        assert bridge_standin.heartbeats[-1]["models"] is None

    async def test_outage_and_refusals_do_not_end_it(
            self, agent_settings: Callable[..., AgentSettings], client: BridgeClient,
            bridge_standin: BridgeStandIn) -> None:
        loop = make_loop(agent_settings(), client, interval_s=0.2, retry_first_s=0.05)
        runner = asyncio.create_task(loop.run())
        try:
            await bridge_standin.until(lambda: len(bridge_standin.heartbeats) >= 1)
            await bridge_standin.stop()  # the bridge is gone
            await asyncio.sleep(0.5)
            assert "cannot be reached" in (loop.last_error or "")
            await bridge_standin.start()  # back on the same port
            count = len(bridge_standin.heartbeats)
            await bridge_standin.until(lambda: len(bridge_standin.heartbeats) > count)
            bridge_standin.token = "another-token"  # the node token was revoked
            await asyncio.sleep(0.5)
            assert "401" in (loop.last_error or "") and not runner.done()
        finally:
            runner.cancel()
        assert bridge_standin.heartbeats[0]["agent_secret"] is not None

    async def test_interval_from_the_bridge_unless_configured(
            self, agent_settings: Callable[..., AgentSettings], client: BridgeClient,
            bridge_standin: BridgeStandIn) -> None:
        bridge_standin.interval_seconds = 7
        loop = make_loop(agent_settings(), client)
        assert loop.interval_s == 30.0
        await loop.report_once()
        assert loop.interval_s == 7.0
        fixed = make_loop(agent_settings(), client, interval_s=2.5)
        await fixed.report_once()
        assert fixed.interval_s == 2.5

    async def test_without_a_bridge_it_only_surveys(
            self, agent_settings: Callable[..., AgentSettings]) -> None:
        loop = make_loop(agent_settings(), None)
        assert await loop.report_once() and loop.heartbeats == 0

    def test_backoff_doubles_up_to_the_cap(self) -> None:
        backoff = Backoff(1.0, 10.0)
        assert [backoff.failed() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
        backoff.succeeded()
        assert backoff.failed() == 1


class TestTaskStates:
    async def test_every_state_in_order_after_an_outage(
            self, client: BridgeClient, bridge_standin: BridgeStandIn) -> None:
        reporter = TaskStateReporter(client, retry_first_s=0.05, retry_cap_s=0.2)
        runner = asyncio.create_task(reporter.run())
        try:
            await bridge_standin.stop()
            await reporter.submit("task-a", TaskStateReport("starting", "spawned"))
            await reporter.submit("task-b", TaskStateReport("starting", "spawned"))
            await reporter.submit("task-a", TaskStateReport(
                "running", "answering", address="127.0.0.1:8000"))
            await asyncio.sleep(0.3)  # a few failed attempts
            assert [t for t, _ in reporter.pending] == ["task-a", "task-b", "task-a"]
            await bridge_standin.start()
            assert await reporter.flush(10)
        finally:
            runner.cancel()
        # the bridge checks each move against its state machine: none may be skipped
        assert [(t, b["state"]) for t, b in bridge_standin.states] == [
            ("task-a", "starting"), ("task-b", "starting"), ("task-a", "running")]
        assert bridge_standin.states[-1][1] == {
            "state": "running", "reason": "answering", "address": "127.0.0.1:8000",
            "exit_code": None, "sleep_mode": None, "gpu_memory_released": None}

    async def test_a_long_outage_drops_the_oldest(self, client: BridgeClient,
                                                  bridge_standin: BridgeStandIn) -> None:
        reporter = TaskStateReporter(client, max_pending=2)
        for n in range(3):
            await reporter.submit(f"task-{n}", TaskStateReport("starting", "spawned"))
        assert [t for t, _ in reporter.pending] == ["task-1", "task-2"]
        assert reporter.dropped == 1

    async def test_a_refused_report_is_dropped(self, client: BridgeClient,
                                               bridge_standin: BridgeStandIn) -> None:
        reporter = TaskStateReporter(client, retry_first_s=0.05)
        runner = asyncio.create_task(reporter.run())
        try:
            bridge_standin.fail_with = 409  # e.g. a transition the bridge does not allow
            await reporter.submit("task-x", TaskStateReport("sleeping", "paused",
                                                            sleep_mode="paused"))
            assert await reporter.flush(5)
            assert bridge_standin.refused == 1 and reporter.sent == 0 and reporter.dropped == 1
        finally:
            runner.cancel()

    async def test_a_report_the_bridge_fails_on_does_not_block_the_next(
            self, client: BridgeClient, bridge_standin: BridgeStandIn) -> None:
        reporter = TaskStateReporter(client, retry_first_s=0.01, retry_cap_s=0.02)
        runner = asyncio.create_task(reporter.run())
        try:
            bridge_standin.fail_with = 500  # the bridge cannot take this one report
            await reporter.submit("task-x", TaskStateReport("failed", "core\x00dump"))
            await reporter.submit("task-y", TaskStateReport("starting", "spawned"))
            await bridge_standin.until(lambda: bridge_standin.refused >= MAX_FAILED_ATTEMPTS)
            bridge_standin.fail_with = None
            assert await reporter.flush(10)
            assert reporter.dropped == 1
            assert [t for t, _ in bridge_standin.states] == ["task-y"]
        finally:
            runner.cancel()

    async def test_nul_in_a_reason_is_not_sent(self) -> None:
        assert "\x00" not in TaskStateReport("failed", "a\x00b").to_json()["reason"]

    async def test_no_bridge_no_reports(self) -> None:
        reporter = TaskStateReporter(None)
        await reporter.submit("task-x", TaskStateReport("running", "up"))
        assert reporter.pending == [] and await reporter.flush(0.1)

    def test_refuses_unknown_states(self) -> None:
        with pytest.raises(ValueError, match="state"):
            TaskStateReport("paused", "the bridge has no such state")
        with pytest.raises(ValueError, match="sleep_mode"):
            TaskStateReport("sleeping", "x", sleep_mode="docker")
