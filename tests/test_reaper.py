"""The suite's reaper kills every process carrying its tag: orphans, processes in sessions
of their own, stopped ones and ones that ignore SIGTERM; and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

from tests.support import reaper

# A parent that starts a grandchild in a new session ignoring SIGTERM, then exits: the
# grandchild is an orphan no process tree leads to.
ORPHAN_MAKER = (
    "import os, signal, subprocess, sys\n"
    "child = subprocess.Popen([sys.executable, '-c', "
    "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'],"
    " start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(child.pid, flush=True)\n"
)


def test_reap_kills_tagged_processes_only() -> None:
    tag = uuid.uuid4().hex
    env = {**os.environ, reaper.TAG_VAR: tag}
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                             env={**os.environ, reaper.TAG_VAR: "someone-else"})
    stopped = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                               env=env)
    try:
        made = subprocess.run([sys.executable, "-c", ORPHAN_MAKER], env=env, check=True,
                              capture_output=True, text=True, timeout=60)
        orphan = int(made.stdout.split()[0])
        stopped.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while len(reaper.tagged(tag)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert {p.pid for p in reaper.tagged(tag)} == {orphan, stopped.pid}
        killed = reaper.reap(tag)
        assert len(killed) == 2
        assert not psutil.pid_exists(orphan) or psutil.Process(orphan).status() == "zombie"
        stopped.wait(timeout=10)  # gone (its status already collected by the reaper)
        assert other.poll() is None  # another session's process is not ours to kill
    finally:
        other.kill()
        other.wait()
        stopped.kill()
        stopped.wait()


FAILING_TEST = '''
import subprocess, sys
from pathlib import Path

def test_starts_a_process_then_fails(tmp_path_factory):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                             start_new_session=True)
    Path({pid_file!r}).write_text(str(child.pid))
    assert False, "a failing test that forgot its process"
'''


def test_a_failed_run_leaves_no_process_behind(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    test_file = tmp_path / "test_leaky.py"
    test_file.write_text(FAILING_TEST.format(pid_file=str(pid_file)))
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
         "--rootdir", str(tmp_path), "--basetemp", str(tmp_path / "inner"), str(test_file)],
        cwd=root, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(root)})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "reaped 1 processes" in run.stdout, run.stdout
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
