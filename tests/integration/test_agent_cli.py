"""`heteroflow agent`, the agent job's entry point, writes its logs (JSON lines on stderr)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.gateway_harness import wait_until
from tests.support.pg import free_port


def test_agent_entry_point_logs(tmp_path: Path) -> None:
    log_path = tmp_path / "agent.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli.main", "agent", "--listen",
             f"127.0.0.1:{free_port()}"], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "HETEROFLOW_HOME": str(tmp_path)})
        try:
            wait_until(lambda: "agent started" in log_path.read_text(), timeout=60,
                       what="the agent's first log line")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    first = json.loads(log_path.read_text().splitlines()[0])
    assert first["event"] == "agent started" and first["level"] == "info"
