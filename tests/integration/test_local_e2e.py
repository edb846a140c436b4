"""The one-machine default end to end, as a user runs it: `heteroflow up`, a real llama.cpp
engine serving the small SmolLM2 model on the CPU, the official OpenAI SDK through the
gateway, and every service operation, then a restart that loses nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import pytest

from bridge.cli.demo import MODEL_FILE
from tests.support.demo_model import model_source
from tests.support.pg import free_port

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-m", "bridge.cli.main"]


class Up:
    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "HETEROFLOW_HOME": str(self.home), "HETEROFLOW_LOG_LEVEL": "INFO"}
        self.log = open(self.home.parent / "up.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([*CLI, "up", "--port", str(self.port)], env=env,
                                     stdout=self.log, stderr=self.log)
        wait_for(lambda: _answers(self.base + "/healthz"), 60, "heteroflow up to answer")
        self.token = (self.home / "admin-token").read_text().strip()
        self.api = httpx.Client(base_url=self.base + "/api/v1", timeout=60,
                                headers={"Authorization": f"Bearer {self.token}"})

    def stop(self) -> None:
        assert self.proc is not None
        self.api.close()
        self.proc.send_signal(signal.SIGINT)
        assert self.proc.wait(timeout=60) == 0
        self.log.close()

    def group(self, gid: str) -> dict[str, Any]:
        r = self.api.get(f"/task-groups/{gid}")
        assert r.status_code == 200, r.text
        return r.json()

    def running(self, gid: str, n: int) -> dict[str, Any] | None:
        g = self.group(gid)
        ok = g["status"] == "running" and len(g["tasks"]) == n and all(
            t["status"] == "running" for t in g["tasks"])
        return g if ok else None


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def serving(base: str, key: str, model: str) -> bool:
    """The gateway answers for the model (it probes a new backend before sending it work)."""
    r = httpx.post(base + "/v1/chat/completions", timeout=60,
                   headers={"Authorization": f"Bearer {key}"},
                   json={"model": model, "max_tokens": 1,
                         "messages": [{"role": "user", "content": "Hi"}]})
    return r.status_code == 200


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def engines_of(home: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "llama_cpp.server" in cmd and any(str(home) in c for c in cmd):
            found.append(p)
    return found


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    os.link(model_source(), home / "models" / MODEL_FILE) if os.stat(
        model_source()).st_dev == os.stat(home).st_dev else __import__("shutil").copyfile(
        model_source(), home / "models" / MODEL_FILE)
    server = Up(home)
    yield server
    if server.proc and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()
    for p in engines_of(home):
        p.kill()
    # under root the data may live elsewhere, HETEROFLOW_HOME/pgdata linking to it
    places = {str(home), str((home / "pgdata").resolve())}
    for p in psutil.process_iter(["name", "cmdline"]):
        if "postgres" in (p.info["name"] or "") and any(
                x in " ".join(p.info["cmdline"] or []) for x in places):
            p.kill()
    if (home / "pgdata").is_symlink():
        __import__("shutil").rmtree((home / "pgdata").resolve().parent, ignore_errors=True)


def test_local_service_lifecycle_through_the_sdk(up: Up) -> None:
    up.start()
    model = str(up.home / "models" / MODEL_FILE)
    r = up.api.post("/task-groups", json={
        "name": "smol", "image": "ghcr.io/ggml-org/llama.cpp:server", "engine": "llamacpp",
        "model_path": model, "gpu_required": 0})
    assert r.status_code == 201, r.text
    created = r.json()
    gid, key = created["id"], created["api_key"]["key"]
    g = wait_for(lambda: up.running(gid, 1), 90, "the engine to run")
    assert g["tasks"][0]["address"].startswith("127.0.0.1:")
    wait_for(lambda: serving(up.base, key, "smol"), 30, "the gateway to serve")

    client = openai.OpenAI(base_url=up.base + "/v1", api_key=key, max_retries=0, timeout=60)
    assert [m.id for m in client.models.list()] == ["smol"]
    # Greedy decoding and a question with an answer: a 135M model sampling freely now and
    # then picks its end token first and answers nothing, which is no gateway failure.
    asked = [{"role": "user", "content": "What is the capital of France?"}]
    reply = client.chat.completions.create(model="smol", messages=asked, max_tokens=16,
                                           temperature=0)
    assert reply.choices[0].message.content and reply.usage and reply.usage.completion_tokens
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="smol", messages=asked, max_tokens=16, temperature=0,
        stream=True) if c.choices]
    assert "".join(pieces).strip()

    # scale to 2: both replicas serve
    r = up.api.put(f"/task-groups/{gid}/scale", json={"replicas": 2})
    assert r.status_code == 200, r.text
    g = wait_for(lambda: up.running(gid, 2), 90, "two replicas")
    addresses = {t["address"] for t in g["tasks"]}
    assert len(addresses) == 2
    time.sleep(3)  # the gateway probes the new backend before it takes work
    seen = set()
    raw = httpx.Client(base_url=up.base + "/v1", headers={"Authorization": f"Bearer {key}"},
                       timeout=60)
    for _ in range(6):
        resp = raw.post("/chat/completions", json={
            "model": "smol", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
        assert resp.status_code == 200, resp.text
        seen.add(resp.headers["x-heteroflow-backend"])
    assert len(seen) == 2

    # sleep both, then a request wakes the service and is answered
    for t in g["tasks"]:
        r = up.api.post(f"/tasks/{t['id']}/sleep")
        assert r.status_code == 200 and r.json()["status"] == "sleeping", r.text
        assert r.json()["sleep_mode"] == "paused" and r.json()["gpu_released"] is False
    assert up.group(gid)["status"] == "sleeping"
    time.sleep(2.5)  # the gateway re-reads tasks every second; then it holds and wakes
    woken = client.chat.completions.create(
        model="smol", messages=[{"role": "user", "content": "Are you awake?"}], max_tokens=8)
    assert woken.choices[0].message.content is not None
    wait_for(lambda: up.group(gid)["status"] == "running", 30, "the group to be running")

    # scale back to 1; then crash the last engine until its restarts are spent: a service
    # keeps trying with backoff (as Nomad reschedules), and says so; then stop it
    assert up.api.put(f"/task-groups/{gid}/scale", json={"replicas": 1}).status_code == 200
    g = wait_for(lambda: up.running(gid, 1), 60, "one replica")
    wait_for(lambda: len(engines_of(up.home)) == 1, 30, "the second engine to end")
    tid = g["tasks"][0]["id"]

    def backing_off() -> bool:
        return "backing off" in up.group(gid)["tasks"][0]["status_reason"]

    for _ in range(10):  # kill it until the restart policy (2 attempts) is spent
        if backing_off():
            break
        for p in engines_of(up.home):
            p.kill()
        time.sleep(1.5)
    wait_for(backing_off, 60, "the restarts to back off")
    assert up.group(gid)["tasks"][0]["status"] != "failed"
    r = up.api.post(f"/tasks/{tid}/stop")
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    wait_for(lambda: not engines_of(up.home), 30, "no engine process")
    assert up.group(gid)["status"] == "completed"

    # delete: no process, no row, no key left
    assert up.api.delete(f"/task-groups/{gid}").status_code == 200
    assert up.api.get(f"/task-groups/{gid}").status_code == 404
    assert up.api.get("/tasks", params={"group_id": gid}).json()["total"] == 0
    assert up.api.get("/model-routes", params={"task_group_id": gid}).json() == []
    def refused() -> bool:  # the gateway forgets the key within seconds
        gone = raw.post("/chat/completions", json={"model": "smol", "messages": [
            {"role": "user", "content": "Hi"}]})
        return gone.status_code == 401

    wait_for(refused, 5, "the deleted service's key to stop working")
    raw.close()
    up.stop()
    assert not engines_of(up.home)


def test_restart_loses_nothing_and_leaves_no_orphan(up: Up) -> None:
    up.start()
    model = str(up.home / "models" / MODEL_FILE)
    created = up.api.post("/task-groups", json={
        "name": "keep", "image": "ghcr.io/ggml-org/llama.cpp:server", "engine": "llamacpp",
        "model_path": model, "gpu_required": 0}).json()
    wait_for(lambda: up.running(created["id"], 1), 90, "the engine to run")
    before = [p.pid for p in engines_of(up.home)]
    up.stop()
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in before)  # the agent stopped its engines with the server
    up.start()
    g = wait_for(lambda: up.running(created["id"], 1), 120, "the engine to run again")
    assert g["tasks"][0]["id"] == created["tasks"][0]["id"]
    assert len(engines_of(up.home)) == 1
    wait_for(lambda: serving(up.base, created["api_key"]["key"], "keep"), 30, "serving")
    client = openai.OpenAI(base_url=up.base + "/v1", api_key=created["api_key"]["key"],
                           max_retries=2, timeout=60)
    reply = client.chat.completions.create(
        model="keep", messages=[{"role": "user", "content": "Still there?"}], max_tokens=8)
    assert reply.choices[0].message.content is not None
    up.stop()
