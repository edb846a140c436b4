"""Engines survive nothing of a dead agent: they inherit none of its descriptors, they are
written down in the agent's home, and the next agent stops what an earlier one left."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

from agent_plugin.executor import Executor, TaskSpec, TaskState
from agent_plugin.executor.ledger import Ledger
from agent_plugin.executor.local import group_members

SERVE = ("import http.server, sys, os; print(sorted(os.listdir('/proc/self/fd')), flush=True);"
         " http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])),"
         " http.server.SimpleHTTPRequestHandler).serve_forever()")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_engine_inherits_no_descriptor_and_is_stopped_by_the_next_agent(
        tmp_path: Path) -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    listening.set_inheritable(True)  # as Sanic leaves the API's socket
    port = _port()
    record = tmp_path / "agent" / "engines.json"
    executor = Executor(ledger=Ledger(record))
    spec = TaskSpec(task_id="t-left", argv=(sys.executable, "-c", SERVE, str(port)), port=port,
                    log_path=tmp_path / "t.log", ready_paths=("/",))
    try:
        handle = await executor.start(spec)
        async with asyncio.timeout(60):
            status = await handle.wait_for(TaskState.RUNNING)
        assert status.pid is not None
        first_line = (tmp_path / "t.log").read_text().splitlines()[1]
        fds = {int(fd) for fd in first_line.strip("[]").replace("'", "").split(", ")}
        assert listening.fileno() not in fds and max(fds) <= 3, fds  # 0-2, and listdir's own
        assert "t-left" in record.read_text()

        # The agent "dies" here; a new one on the same home finds the engine and stops it.
        assert Ledger(record).stop_leftovers(grace_s=10) == ["t-left"]
        assert not group_members(status.pid)
        assert Ledger(record).stop_leftovers() == []  # once only
    finally:
        await executor.shutdown(timeout=5)
        listening.close()


def test_an_unrelated_process_with_a_recorded_number_is_left_alone(tmp_path: Path) -> None:
    record = tmp_path / "engines.json"
    ledger = Ledger(record)
    ledger.started("t-mine", os.getpid())  # this test process: alive, but ...
    text = record.read_text().replace('"started": "', '"started": "1')  # ... started elsewhen
    record.write_text(text)
    assert Ledger(record).stop_leftovers() == []


@pytest.mark.parametrize("content", ["", "{", '{"engines": [{"pgid": "x"}]}', "[]"])
def test_an_unreadable_record_is_ignored(tmp_path: Path, content: str) -> None:
    record = tmp_path / "engines.json"
    record.write_text(content)
    assert Ledger(record).stop_leftovers() == []
