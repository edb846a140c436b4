"""`heteroflow up` as a real process for tests: its own home, a free port, its log on disk,
and stopped (SIGINT, then its whole process group killed) whatever happens."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from tests.support.gateway_harness import wait_until
from tests.support.pg import free_port


class UpProcess:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "up.log"
        full = {**os.environ, "HETEROFLOW_HOME": str(home), **env}
        full.pop("HETEROFLOW_DATABASE_URL", None)
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli.main", "up", "--port", str(self.port)],
            env=full, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self) -> None:
        wait_until(lambda: self.proc.poll() is None and httpx.get(
            self.url + "/healthz", timeout=1).status_code == 200, timeout=120,
            what="heteroflow up")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        with suppress(ProcessLookupError):  # the embedded PostgreSQL, anything it started
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


@contextmanager
def up_process(home: Path, **env: str) -> Iterator[UpProcess]:
    up = UpProcess(home, env)
    try:
        up.wait_ready()
        yield up
    finally:
        up.stop()
