"""`heteroflow up` as a user runs it: a real process, embedded PostgreSQL, restarts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.bridge_helpers import seed_example
from tests.support.pg import free_port

pytestmark = pytest.mark.slow
HEROFLOW = [sys.executable, "-m", "bridge.cli.main"]


class Up:
    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "HETEROFLOW_HOME": str(self.home), "HETEROFLOW_LOG_LEVEL": "INFO"}
        env.pop("HETEROFLOW_DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [*HEROFLOW, "up", "--port", str(self.port)], env=env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.communicate()
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("heteroflow up did not answer within 60 s")

    def stop(self) -> tuple[int, str, str]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, out, err

    def postgres_processes(self) -> list[psutil.Process]:
        # under root the data may live elsewhere, HETEROFLOW_HOME/pgdata linking to it
        places = {str(self.home), str((self.home / "pgdata").resolve())}
        found = []
        for p in psutil.process_iter(["name", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "postgres" in (p.info["name"] or "") and any(x in cmd for x in places):
                found.append(p)
        return found

    def cli(
        self, *args: str, token: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*HEROFLOW, "-address", self.base, "-token", token, *args],
                              input=stdin, capture_output=True, text=True, timeout=60)


@pytest.fixture
def up(tmp_path: Path):
    server = Up(tmp_path / "home", free_port())
    yield server
    if server.proc and server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()
    for p in server.postgres_processes():
        p.kill()
    link = server.home / "pgdata"
    if link.is_symlink():  # data relocated under root: remove it with the home
        shutil.rmtree(link.resolve().parent, ignore_errors=True)


def test_up_creates_admin_serves_api_and_survives_restart(up: Up) -> None:
    up.start()
    token_file = up.home / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}

    body = seed_example()
    r = httpx.post(up.base + "/api/v1/task-groups", json=body, headers=headers)
    assert r.status_code == 201, r.text
    created = r.json()
    api_key = created["api_key"]["key"]

    # The CLI, as a user would call it.
    listed = up.cli("-json", "service", "list", token=token)
    assert listed.returncode == 0, listed.stderr
    assert [g["name"] for g in json.loads(listed.stdout)["items"]] == [body["name"]]
    # On a machine without GPUs a one-GPU service waits, and says why.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = up.cli("service", "status", created["id"], token=token)
        if "no healthy GPU" in status.stdout:
            break
        time.sleep(0.5)
    assert status.returncode == 0 and "pending" in status.stdout
    assert "this machine has no healthy GPU" in status.stdout, status.stdout
    made = up.cli("service", "create", "-f", "-", token=token,
                  stdin=json.dumps(seed_example(name="from-cli")))
    assert made.returncode == 0 and "sk-" in made.stdout, made.stderr
    bad = up.cli("service", "create", "-f", "-", token=token,
                 stdin=json.dumps(seed_example(name="Bad Name")))
    assert bad.returncode == 1 and "name" in bad.stderr
    denied = up.cli("service", "list", token="hft_wrong")
    assert denied.returncode == 1 and "unauthorized" in denied.stderr

    code, out, err = up.stop()
    assert code == 0, err
    assert token in out  # printed once, in the banner
    assert up.postgres_processes() == []  # embedded PostgreSQL stopped, nothing orphaned
    for line in err.splitlines():
        if line.startswith("{"):
            json.loads(line)  # one JSON object per line
    assert token not in err and api_key not in err  # no secret in the logs
    assert '"path"' in err or "task-groups" in err  # the access log is there

    # Second start: same data, the token is not printed again, the old one still works.
    up.start()
    got = httpx.get(f"{up.base}/api/v1/task-groups/{created['id']}", headers=headers)
    assert got.status_code == 200, got.text
    assert [t["id"] for t in got.json()["tasks"]] == [t["id"] for t in created["tasks"]]
    assert got.json()["endpoint"] == created["endpoint"]
    trail = httpx.get(up.base + "/api/v1/audit", headers=headers,
                      params={"object_id": created["id"]}).json()["items"]
    assert [e["action"] for e in trail] == ["task_group.create"]
    keys = httpx.get(f"{up.base}/api/v1/endpoints/{created['endpoint']}/api-keys",
                     headers=headers).json()
    assert [k["prefix"] for k in keys] == [api_key[:11]]
    code, out, err = up.stop()
    assert code == 0
    assert "hft_" not in out and token_file.read_text().strip() == token
    assert up.postgres_processes() == []
