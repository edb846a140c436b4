"""The node agent as one thing to start and stop: ``Agent`` (async, for ``heteroflow up`` to
run inside its own event loop next to the bridge) and ``run_agent`` (blocking, for
``heteroflow agent``: runs until SIGINT or SIGTERM).

Start: identity (node id, secret) -> engines an earlier agent left running are stopped
(``executor.ledger``) -> the HTTP API -> background loops: reports (heartbeat,
Nomad metadata), task-state reports, idle detection. Stop, in reverse: loops end, the API
closes, every engine the agent started is stopped (SIGTERM, then SIGKILL), and the final
task states are sent to the bridge if it answers within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Mapping
from typing import Protocol, TypeVar

import httpx
from aiohttp import web

from agent_plugin.api.server import AgentApi
from agent_plugin.docker import DockerClient
from agent_plugin.engine_metrics import EngineMetricsWatcher
from agent_plugin.errors import AgentError
from agent_plugin.executor.ledger import Ledger
from agent_plugin.identity import Identity, load_identity
from agent_plugin.idle import Clock, IdleWatcher
from agent_plugin.report.bridge import BridgeClient
from agent_plugin.report.loop import DEFAULT_INTERVAL_S, ReportLoop
from agent_plugin.report.nomad_meta import NomadMetaPublisher
from agent_plugin.report.survey import Surveyor
from agent_plugin.report.task_states import TaskStateReporter
from agent_plugin.settings import AgentSettings
from agent_plugin.tasks import NodeTasks

log = logging.getLogger(__name__)
_FINAL_REPORTS_S = 5.0
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class _Closable(Protocol):
    async def aclose(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class Agent:
    def __init__(self, settings: AgentSettings, *, clock: Clock = time.monotonic,
                 base_env: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self._clock, self._base_env = clock, base_env
        self.url: str | None = None
        self.identity: Identity | None = None
        self._stack = contextlib.AsyncExitStack()
        self._background: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.tasks: NodeTasks | None = None
        self.idle: IdleWatcher | None = None
        self.engine_metrics: EngineMetricsWatcher | None = None
        self.reports: ReportLoop | None = None
        self.task_states: TaskStateReporter | None = None

    async def start(self) -> None:
        """Everything runs once this returns; raises ``OSError`` when the API's port is
        taken (the agent is then stopped again)."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        loops, self._background = self._background, []
        sender = next((t for t in loops if t.get_name() == "agent:task-states"), None)
        await _cancel([t for t in loops if t is not sender])
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.tasks is not None:
            await self.tasks.shutdown()
        # the sender still runs: the engines' final states go out now if the bridge answers
        if self.task_states is not None and sender is not None and \
                not await self.task_states.flush(_FINAL_REPORTS_S):
            log.warning("final task states not reported",
                        extra={"tasks": sorted({t for t, _ in self.task_states.pending})})
        await _cancel([sender] if sender is not None else [])
        await self._stack.aclose()

    async def _start(self) -> None:
        s = self.settings
        self.identity = identity = await asyncio.to_thread(load_identity, s)
        # engines an earlier agent left after a crash: stopped before this one starts any,
        # so none runs twice and their ports are free again
        ledger = Ledger(s.state_dir / "engines.json")
        await asyncio.to_thread(ledger.stop_leftovers, s.stop_grace_seconds)
        client = self._closing(httpx.AsyncClient(trust_env=False))
        docker = self._closing(DockerClient(s.docker_socket)) if s.docker_socket else None
        bridge = (self._closing(BridgeClient(
            s.bridge_url, s.node_token.get_secret_value() if s.node_token else None))
            if s.bridge_url else None)
        nomad = (self._closing(NomadMetaPublisher(
            s.nomad_addr, s.nomad_token.get_secret_value() if s.nomad_token else None,
            node_id=s.nomad_node_id, node_name=identity.name)) if s.nomad_addr else None)
        self.task_states = TaskStateReporter(
            bridge, retry_first_s=s.report_retry_seconds,
            retry_cap_s=s.heartbeat_seconds or DEFAULT_INTERVAL_S)
        host = s.advertise_host or (socket.gethostname() if s.listen_host in _WILDCARDS
                                    else s.listen_host)
        self.tasks = NodeTasks(reporter=self.task_states, client=client, docker=docker,
                               advertise_host=host, engine_timeout_s=s.engine_timeout_seconds,
                               stop_grace_s=s.stop_grace_seconds, base_env=self._base_env,
                               ledger=ledger)
        self.idle = IdleWatcher(self.tasks, client, clock=self._clock,
                                poll_s=s.idle_poll_seconds)
        idle = self.idle
        self.engine_metrics = EngineMetricsWatcher(self.tasks.running_engines, client,
                                                   poll_s=s.engine_metrics_poll_seconds)
        readings = self.engine_metrics
        api = AgentApi(node_id=identity.node_id, secret=identity.secret, tasks=self.tasks,
                       log_dir=s.task_log_dir, idle_notes=lambda: idle.notes,
                       layout_path=s.gpu_layout_path)
        port = await self._serve(api)
        self.url = s.agent_url or f"http://{_url_host(host)}:{port}"
        self.reports = ReportLoop(identity=identity, surveyor=Surveyor(s, docker),
                                  bridge=bridge, nomad=nomad, agent_url=lambda: self.url,
                                  interval_s=s.heartbeat_seconds,
                                  retry_first_s=s.report_retry_seconds,
                                  engine_metrics=lambda: readings.latest)
        for name, job in (("task-states", self.task_states.run()),
                          ("reports", self.reports.run()), ("idle", self.idle.run()),
                          ("engine-metrics", self.engine_metrics.run())):
            self._background.append(asyncio.create_task(job, name=f"agent:{name}"))
        log.info("agent started", extra={"node_id": identity.node_id, "url": self.url,
                                         "bridge": s.bridge_url, "nomad": s.nomad_addr})

    async def _serve(self, api: AgentApi) -> int:
        self._runner = web.AppRunner(api.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.listen_host, self.settings.listen_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self.settings.listen_port

    def _closing(self, client: C) -> C:
        self._stack.push_async_callback(client.aclose)
        return client


def run_agent(settings: AgentSettings) -> int:
    """Run the agent until SIGINT or SIGTERM; 0 after a clean stop, 1 when it could not
    start (the reason is logged)."""
    return asyncio.run(_run(settings))


async def _run(settings: AgentSettings) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    agent = Agent(settings)
    try:
        await agent.start()
    except (AgentError, OSError) as exc:
        log.error("agent did not start", extra={"reason": str(exc)})
        return 1
    await stop.wait()
    log.info("agent stopping; stopping the engines it started")
    await agent.stop()
    return 0


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
