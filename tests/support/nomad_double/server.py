"""`NomadDouble`: the Nomad API double as a real HTTP server on loopback.

    async with NomadDouble(nodes=mixed_fleet(), runner=AutoRunner()) as double:
        httpx.get(double.address + "/v1/nodes")

    double = NomadDouble(nodes=gpu_fleet(20)); double.start_in_thread(); ...; double.stop_thread()

Test hooks (`set_alloc_status`, `drop_events_until`, `close_streams`, `add_node`,
`set_node_meta`) may be called from the double's loop or, in thread mode, from any thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from . import routes_allocs as allocs
from . import routes_jobs as jobs
from . import routes_nodes as nodes_routes
from .cluster import Cluster
from .httpapi import API_KEY, Api, json_response, nomad_errors
from .runners import ManualRunner, Runner

Json = dict[str, Any]
T = TypeVar("T")
log = logging.getLogger(__name__)


class NomadDouble:
    """A stateful fake of Nomad's HTTP API with a real scheduler inside."""

    def __init__(self, nodes: list[Json] | None = None, *, acl_token: str | None = None,
                 heartbeat_seconds: float = 30.0, runner: Runner | None = None,
                 region: str = "global", seed: int = 0, event_buffer: int = 100,
                 host: str = "127.0.0.1", port: int = 0, preemption: bool = False) -> None:
        self.runner = runner if runner is not None else ManualRunner()
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._web: web.AppRunner | None = None
        self.cluster = Cluster(list(nodes or []), self.runner, self._defer, seed=seed,
                               event_buffer=event_buffer)
        self.cluster.store.preempt_service = preemption  # service-scheduler preemption
        self.runner.bind(self.cluster.client)
        self.api = Api(cluster=self.cluster, region=region, acl_token=acl_token,
                       heartbeat_seconds=heartbeat_seconds)

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def store(self) -> Any:
        return self.cluster.store

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        app = web.Application(middlewares=[nomad_errors])
        app[API_KEY] = self.api
        _add_routes(app)
        self._web = web.AppRunner(app, access_log=None, handle_signals=False,
                                  shutdown_timeout=0.5)
        await self._web.setup()
        site = web.TCPSite(self._web, self.host, self.port)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        log.info("nomad double listening", extra={"address": self.address})

    async def stop(self) -> None:
        self.cluster.broker.close_all()
        await self.runner.close()
        if self._web is not None:
            await self._web.cleanup()
            self._web = None

    async def __aenter__(self) -> NomadDouble:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start_in_thread(self) -> None:
        """Run the double on its own event loop in a daemon thread (for sync callers)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=main, name="nomad-double", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

    def stop_thread(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread = None

    # -- test hooks ------------------------------------------------------------------------

    def set_alloc_status(self, alloc_id: str, status: str, *, healthy: bool | None = None,
                         events: list[Json | str] | None = None, exit_code: int | None = None,
                         description: str | None = None) -> Json:
        """Report a client status for an allocation, as its Nomad client would."""
        return self._on_loop(lambda: self.cluster.client.report(
            alloc_id, status, healthy=healthy, events=events, exit_code=exit_code,
            description=description))

    def drop_events_until(self, index: int) -> None:
        """Forget event batches below `index`; a stream resuming before it sees a gap."""
        self._on_loop(lambda: self.cluster.broker.drop_until(index))

    def close_streams(self) -> None:
        """End every open event stream (a client must reconnect and reconcile)."""
        self._on_loop(self.cluster.broker.close_all)

    def add_node(self, node: Json) -> None:
        self._on_loop(lambda: self.cluster.add_nodes([node]))

    def set_node_meta(self, node_id: str, meta: dict[str, str | None]) -> Json:
        return self._on_loop(lambda: self.cluster.apply_node_meta(node_id, meta))

    def allocations(self, job_id: str, namespace: str = "default") -> list[Json]:
        return self._on_loop(lambda: list(self.cluster.store.job_allocs((namespace, job_id))))

    # -- internals -------------------------------------------------------------------------

    def _defer(self, delay: float, callback: Callable[[], None]) -> None:
        if self._loop is None:
            return
        self._loop.call_later(delay, callback)

    def _on_loop(self, fn: Callable[[], T]) -> T:
        loop = self._loop
        if self._thread is None or loop is None or threading.current_thread() is self._thread:
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)


def _add_routes(app: web.Application) -> None:
    routes = [
        ("/v1/jobs", jobs.jobs), ("/v1/jobs/parse", jobs.parse),
        ("/v1/job/{tail:.+}", jobs.job_tail),
        ("/v1/allocations", allocs.allocations), ("/v1/allocation/{tail:.+}", allocs.allocation),
        ("/v1/evaluations", allocs.evaluations), ("/v1/evaluation/{tail:.+}", allocs.evaluation),
        ("/v1/deployments", allocs.deployments), ("/v1/deployment/{tail:.+}", allocs.deployment),
        ("/v1/nodes", nodes_routes.nodes), ("/v1/node/{tail:.+}", nodes_routes.node),
        ("/v1/client/metadata", nodes_routes.client_metadata),
        ("/v1/acl/token/self", nodes_routes.token_self),
        ("/v1/event/stream", nodes_routes.event_stream),
        ("/v1/status/leader", _leader), ("/v1/agent/self", _agent_self),
    ]
    for path, handler in routes:
        app.router.add_route("*", path, handler)


async def _leader(request: web.Request) -> web.StreamResponse:
    return json_response(f"{request.host.split(':')[0]}:4647")


async def _agent_self(request: web.Request) -> web.StreamResponse:
    api = request.app[API_KEY]
    return json_response({"config": {"Region": api.region, "Datacenter": api.datacenter,
                                     "Version": {"Version": "1.6.3", "VersionPrerelease": ""},
                                     "ACL": {"Enabled": api.acl_token is not None}},
                          "member": {"Name": "nomad-double.global", "Status": "alive"},
                          "stats": {}})
