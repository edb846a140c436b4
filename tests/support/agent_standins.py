"""Real HTTP servers on loopback (and one on a unix socket) standing in for what the agent
talks to: the bridge's two agent endpoints, SGLang's memory-saver surface, and the Docker
engine's pause API. Each records what it was sent and can be told to fail."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from agent_plugin.executor import TaskSpec

ROOT = Path(__file__).resolve().parent.parent.parent


class Server:
    """An aiohttp app on 127.0.0.1 (or a unix socket), started and stopped in the test's
    loop; ``stop`` and ``start`` again on the same port simulate an outage."""

    def __init__(self, port: int = 0, unix_path: Path | None = None) -> None:
        self.port, self.unix_path = port, unix_path
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()

    def app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                     shutdown_timeout=0.2)
        await self._runner.setup()
        if self.unix_path is not None:
            await web.UnixSite(self._runner, str(self.unix_path)).start()
            return
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def changed(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def until(self, check: Callable[[], Any], within_s: float = 20.0) -> Any:
        """Wait until ``check()`` is truthy; returns its value."""
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(check)
        return check()


class BridgeStandIn(Server):
    """``POST /api/v1/agent/heartbeat`` and ``POST /api/v1/agent/tasks/{id}/state``."""

    def __init__(self, token: str = "node-token", interval_seconds: int = 30) -> None:
        super().__init__()
        self.token = token
        self.interval_seconds = interval_seconds
        self.heartbeats: list[dict[str, Any]] = []
        self.states: list[tuple[str, dict[str, Any]]] = []
        self.fail_with: int | None = None  # answer every call with this status
        self.refused = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.post("/api/v1/agent/heartbeat", self._heartbeat),
                        web.post("/api/v1/agent/tasks/{task_id}/state", self._state)])
        return app

    def states_of(self, task_id: str) -> list[str]:
        return [body["state"] for tid, body in self.states if tid == task_id]

    async def _refusal(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": {"code": "unauthorized", "message": "token"}},
                                     status=401)
        if self.fail_with is not None:
            self.refused += 1
            await self.changed()
            return web.json_response({"error": {"code": "broken", "message": "told to fail"}},
                                     status=self.fail_with)
        return None

    async def _heartbeat(self, request: web.Request) -> web.Response:
        refusal = await self._refusal(request)
        if refusal is not None:
            return refusal
        body = await request.json()
        self.heartbeats.append(body)
        await self.changed()
        return web.json_response({"node_id": body["node_id"], "status": "online",
                                  "interval_seconds": self.interval_seconds})

    async def _state(self, request: web.Request) -> web.Response:
        refusal = await self._refusal(request)
        if refusal is not None:
            return refusal
        self.states.append((request.match_info["task_id"], await request.json()))
        await self.changed()
        return web.json_response({"id": request.match_info["task_id"]})


class SglangStandIn(Server):
    """SGLang's memory saver and metrics (``--enable-memory-saver --enable-metrics``)."""

    def __init__(self, metrics: bool = True) -> None:
        super().__init__()
        self.running = 0
        self.released = False
        self.metrics = metrics
        self.calls: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.post("/release_memory_occupation", self._release),
                        web.post("/resume_memory_occupation", self._resume)])
        if self.metrics:
            app.add_routes([web.get("/metrics", self._metrics)])
        return app

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(text=(
            "# TYPE sglang:num_running_reqs gauge\n"
            f'sglang:num_running_reqs{{model_name="m",engine_type="unified"}} {self.running}\n'
            "# TYPE sglang:num_queue_reqs gauge\n"
            'sglang:num_queue_reqs{model_name="m",engine_type="unified"} 0.0\n'))

    async def _release(self, request: web.Request) -> web.Response:
        self.calls.append("release")
        assert await request.json() == {}
        self.released = True
        return web.json_response({"success": True})

    async def _resume(self, request: web.Request) -> web.Response:
        self.calls.append("resume")
        self.released = False
        return web.json_response({"success": True})


class DockerStandIn(Server):
    """The Docker Engine API's ping, image list, pause and unpause on a unix socket, with
    the daemon's answers: 204, 404 "No such container", 409 when already (un)paused."""

    def __init__(self, socket_path: Path, containers: dict[str, str],
                 images: list[str] | None = None) -> None:
        super().__init__(unix_path=socket_path)
        self.containers = containers  # name -> "running" | "paused" | "exited"
        self.images = images or []
        self.calls: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([web.get("/_ping", self._ping), web.get("/images/json", self._images),
                        web.post("/containers/{ref}/{verb:pause|unpause}", self._toggle)])
        return app

    async def _ping(self, _: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _images(self, _: web.Request) -> web.Response:
        return web.json_response([{"Id": f"sha256:{i:064x}", "RepoTags": [tag]}
                                  for i, tag in enumerate(self.images)])

    async def _toggle(self, request: web.Request) -> web.Response:
        ref, verb = request.match_info["ref"], request.match_info["verb"]
        self.calls.append(f"{verb} {ref}")
        state = self.containers.get(ref)
        if state is None:
            return web.json_response({"message": f"No such container: {ref}"}, status=404)
        if verb == "pause":
            if state == "paused":
                return web.json_response(
                    {"message": f"Container {ref} is already paused"}, status=409)
            if state != "running":
                return web.json_response({"message": f"Container {ref} is not running"},
                                         status=409)
            self.containers[ref] = "paused"
        else:
            if state != "paused":
                return web.json_response({"message": f"Container {ref} is not paused"},
                                         status=409)
            self.containers[ref] = "running"
        return web.Response(status=204)


def engine_double_argv(port: int, *extra: str) -> list[str]:
    """The vLLM-like engine double as a real process (see tests/support/engine_double)."""
    return [sys.executable, "-m", "tests.support.engine_double", "--port", str(port), *extra]


def double_env() -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT)}


def double_task(tmp_path: Path, task_id: str, port: int) -> TaskSpec:
    """The engine double run by the executor (a vLLM-like engine this agent started)."""
    return TaskSpec(task_id=task_id, argv=tuple(engine_double_argv(port)), port=port,
                    log_path=tmp_path / "logs" / f"{task_id}.log", env=double_env(),
                    ready_paths=("/health",))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EngineDouble:
    """The engine double as a real process, outside any executor (an engine Nomad placed)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.url = f"http://{self.address}"
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> EngineDouble:
        self._process = await asyncio.create_subprocess_exec(
            *engine_double_argv(self.port), cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        async with httpx.AsyncClient(trust_env=False) as client, asyncio.timeout(30):
            while True:
                try:
                    if (await client.get(self.url + "/_stats")).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    async def stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient(trust_env=False) as client:
            found: dict[str, Any] = (await client.get(self.url + "/_stats")).json()
            return found

    async def control(self, **settings: Any) -> None:
        async with httpx.AsyncClient(trust_env=False) as client:
            (await client.post(self.url + "/_control", json=settings)).raise_for_status()
