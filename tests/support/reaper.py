"""One reaper for every process the test suite starts, whatever fails.

At the start of a session a unique tag is put in the environment; every process the tests
start (harness processes, `heteroflow up`, engines, Consul, the embedded PostgreSQL and
whatever those start in turn) inherits it, even once orphaned or in a session of its own.
At the end of the session, at interpreter exit and on SIGTERM/SIGHUP, every process still
carrying the tag is killed: a fixture that failed half-way, a test killed by a timeout, a
double that was SIGSTOPped, none of them outlives the run. Other sessions on the same
machine (other developers' runs) carry other tags and are left alone.
"""

from __future__ import annotations

import atexit
import os
import signal
import uuid
from types import FrameType

import psutil

TAG_VAR = "HETEROFLOW_TEST_SESSION"


def tagged(tag: str) -> list[psutil.Process]:
    """Processes (other than this one) whose environment carries ``tag``."""
    me = os.getpid()
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(TAG_VAR) == tag:
                found.append(proc)
        except (psutil.Error, OSError):
            continue  # gone meanwhile, or a kernel thread
    return found


def reap(tag: str) -> list[str]:
    """Kill what carries ``tag``; what was killed, for the record."""
    procs = tagged(tag)
    killed: list[str] = []
    for proc in procs:
        try:
            killed.append(f"{proc.pid} {' '.join(proc.cmdline())[:160]}")
            proc.send_signal(signal.SIGCONT)  # a stopped process dies only once resumed
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(procs, timeout=10)
    return killed


def install() -> str:
    """Tag this session's children; reap them at exit and on SIGTERM/SIGHUP."""
    tag = uuid.uuid4().hex
    os.environ[TAG_VAR] = tag
    atexit.register(reap, tag)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)

        def on_signal(signum: int, frame: FrameType | None, previous: object = previous) -> None:
            reap(tag)
            if callable(previous):
                previous(signum, frame)
            else:
                raise SystemExit(128 + signum)

        signal.signal(sig, on_signal)
    return tag
