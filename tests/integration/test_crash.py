"""A crashed `heteroflow up` (kill -9 while the demo engine runs) leaves nothing behind that
blocks the next one: its engine dies with it, the port is free, and the restarted server
runs the demo engine once, not twice, and stops everything when it is stopped. On the way:
the engine refuses callers without its per-task key, which the gateway holds."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.pg import free_port

pytestmark = pytest.mark.slow
ENGINE = "llama_cpp.server"


def _engines(home: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if ENGINE in cmd and str(home) in cmd:
            found.append(p)
    return found


def _strays(home: Path) -> list[psutil.Process]:
    places = {str(home), str((home / "pgdata").resolve())}
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if any(x in cmd for x in places):
            found.append(p)
    return found


def _wait(what: str, check, timeout_s: float = 300.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


class Server:
    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "HETEROFLOW_HOME": str(self.home)}
        env.pop("HETEROFLOW_DATABASE_URL", None)
        log = (self.home.parent / "up.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli.main", "up", "--demo", "--port", str(self.port)],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        _wait("heteroflow up answers", self._healthy, 120)

    def _healthy(self) -> bool:
        assert self.proc is not None
        assert self.proc.poll() is None, (self.home.parent / "up.log").read_text()[-3000:]
        try:
            return httpx.get(self.base + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def demo_running(self) -> bool:
        token = (self.home / "admin-token").read_text().strip()
        r = httpx.get(self.base + "/api/v1/tasks", headers={"Authorization": f"Bearer {token}"},
                      timeout=10)
        return r.status_code == 200 and any(t["status"] == "running" for t in r.json()["items"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "home", free_port())
    try:
        yield s
    finally:
        if s.proc is not None and s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        for p in _strays(s.home):
            p.kill()
        link = s.home / "pgdata"
        if link.is_symlink():
            shutil.rmtree(link.resolve().parent, ignore_errors=True)


def test_kill_9_then_restart_on_the_same_port(server: Server) -> None:
    if importlib_missing("llama_cpp"):
        pytest.skip("the llama.cpp engine is not installed (pip install -e '.[engine]')")
    server.start()
    _wait("the demo engine runs", server.demo_running)
    [first] = _engines(server.home)
    # the engine holds its own port only, never the API's
    held = {c.laddr.port for c in first.net_connections("tcp") if c.status == "LISTEN"}
    assert server.port not in held, held
    # the engine refuses callers without its key; the gateway holds it
    [engine_port] = held
    assert httpx.get(f"http://127.0.0.1:{engine_port}/v1/models", timeout=10).status_code == 401
    key = (server.home / "demo-api-key").read_text().strip()
    _wait("the gateway answers through the keyed engine", lambda: httpx.post(
        server.base + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
        json={"model": "demo", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]},
        timeout=60).status_code == 200, 180)

    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    _wait("the engine dies with its agent", lambda: not first.is_running()
          or first.status() == psutil.STATUS_ZOMBIE, 60)

    server.start()  # the same port: it binds
    _wait("the demo engine runs again", lambda: server.demo_running() and _engines(server.home))
    engines = _engines(server.home)
    assert len(engines) == 1 and engines[0].pid != first.pid, engines

    assert server.proc is not None
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=60) == 0
    _wait("nothing of it is left", lambda: not _strays(server.home), 30)


def importlib_missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None
