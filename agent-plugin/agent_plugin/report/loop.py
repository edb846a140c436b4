"""The report loop: every interval, survey the node, publish Nomad node metadata when it
changed, and heartbeat to the bridge.

The heartbeat carries the full model list only when the scan changed since the last report
the bridge took (``models`` is null otherwise), and the agent's secret until the bridge has
taken it once after this start. A failed heartbeat is retried with backoff; the next one
that gets through carries whatever the failed ones would have. No failure, of the bridge,
of Nomad or of the survey itself, ends the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from agent_plugin.cpu import CpuMeter
from agent_plugin.errors import AgentError, ReportError
from agent_plugin.identity import Identity
from agent_plugin.report.backoff import Backoff
from agent_plugin.report.bridge import BridgeClient
from agent_plugin.report.nomad_meta import NomadMetaPublisher, node_meta
from agent_plugin.report.shapes import HeartbeatAnswer, HeartbeatBody
from agent_plugin.report.survey import Survey, Surveyor

log = logging.getLogger(__name__)
DEFAULT_INTERVAL_S = 30.0  # until the bridge says otherwise


def build_heartbeat(identity: Identity, survey: Survey, *, agent_url: str | None,
                    nomad_node_id: str | None, with_secret: bool,
                    with_models: bool,
                    engine_metrics: Mapping[str, Mapping[str, Any]] | None = None,
                    cpu_percent: float | None = None) -> HeartbeatBody:
    facts = identity.facts_json()
    if cpu_percent is not None:
        facts["cpu_percent"] = cpu_percent  # since the previous heartbeat
    return HeartbeatBody(
        node_id=identity.node_id, name=identity.name, agent_url=agent_url,
        agent_secret=identity.secret if with_secret else None, nomad_node_id=nomad_node_id,
        facts={**facts, **survey.load}, gpus=survey.detection.devices,
        skipped=survey.detection.skipped, engines=survey.engines,
        models=survey.models if with_models else None, engine_metrics=engine_metrics or {})


class ReportLoop:
    def __init__(self, *, identity: Identity, surveyor: Surveyor, bridge: BridgeClient | None,
                 nomad: NomadMetaPublisher | None, agent_url: Callable[[], str | None],
                 interval_s: float | None = None, retry_first_s: float = 1.0,
                 engine_metrics: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None
                 ) -> None:
        self._engine_metrics = engine_metrics
        self._cpu = CpuMeter()
        self._identity, self._surveyor = identity, surveyor
        self._bridge, self._nomad = bridge, nomad
        self._agent_url = agent_url
        self._fixed_interval = interval_s
        self._retry_first_s = retry_first_s
        self._models_unsent = True
        self._secret_unsent = True
        self._nomad_problem: str | None = None
        self.last_answer: HeartbeatAnswer | None = None
        self.last_error: str | None = None
        self.heartbeats = 0  # taken by the bridge since start

    @property
    def interval_s(self) -> float:
        if self._fixed_interval is not None:
            return self._fixed_interval
        if self.last_answer is not None and self.last_answer.interval_seconds > 0:
            return float(self.last_answer.interval_seconds)
        return DEFAULT_INTERVAL_S

    async def run(self) -> None:
        backoff = Backoff(self._retry_first_s, self.interval_s)
        while True:
            try:
                ok = await self.report_once()
            except Exception as exc:  # a survey bug must not end reporting
                log.exception("report round failed")
                self.last_error, ok = f"report round failed: {exc}", False
            backoff.cap_s = self.interval_s
            if ok:
                backoff.succeeded()
                delay = self.interval_s
            else:
                delay = backoff.failed()
            await asyncio.sleep(delay)

    async def report_once(self) -> bool:
        """One round; True when the bridge took the heartbeat (or none is configured)."""
        survey = await self._surveyor.survey()
        if survey.models_changed:
            self._models_unsent = True
        await self._publish_meta(survey)
        if self._bridge is None:
            return True
        body = build_heartbeat(
            self._identity, survey, agent_url=self._agent_url(),
            nomad_node_id=self._nomad.node_id if self._nomad else None,
            with_secret=self._secret_unsent, with_models=self._models_unsent,
            engine_metrics=self._engine_metrics() if self._engine_metrics else None,
            cpu_percent=self._cpu.percent())
        try:
            answer = await self._bridge.heartbeat(body)
        except ReportError as exc:
            if exc.message != self.last_error:
                log.warning("heartbeat not taken", extra={"reason": exc.message,
                                                         "retryable": exc.retryable})
            self.last_error = exc.message
            return False
        if self.last_error is not None:
            log.info("heartbeat taken again", extra={"node_id": answer.node_id})
        self.last_answer, self.last_error = answer, None
        self.heartbeats += 1
        self._secret_unsent = False
        if body.models is not None:
            self._models_unsent = False
        return True

    async def _publish_meta(self, survey: Survey) -> None:
        if self._nomad is None:
            return
        names = [m.name for m in survey.models]
        try:
            await self._nomad.publish(node_meta(survey.detection.devices, survey.engines, names,
                                                survey.load))
        except AgentError as exc:
            if exc.message != self._nomad_problem:  # once per distinct problem
                log.warning("nomad node metadata not published", extra={"reason": exc.message})
            self._nomad_problem = exc.message
        else:
            self._nomad_problem = None
