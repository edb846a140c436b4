"""Idle sleep of a real llama.cpp service (llama-cpp-python: no /metrics at all), judged
from the gateway's traffic, with an injected clock; then a request wakes it.

`heteroflow up` runs against a database of the test's PostgreSQL, so the test drives the
bridge's own policy loop code on the same rows with a clock 31 minutes ahead."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from bridge.agents.client import AgentClient
from bridge.cli.demo import MODEL_FILE
from bridge.crypto import SecretBox, load_or_create_key
from bridge.services.policy_loop import PolicyLoop
from bridge.settings import BridgeSettings
from bridge.storage.db import Database
from tests.integration.test_local_e2e import Up, serving, wait_for
from tests.integration.test_local_e2e import up as up  # the fixture, re-exported
from tests.support.pg import fresh_database

pytestmark = pytest.mark.slow


@pytest.fixture
def shared_db(pg) -> Iterator[str]:
    url = fresh_database(pg)
    old = os.environ.get("HETEROFLOW_DATABASE_URL")
    os.environ["HETEROFLOW_DATABASE_URL"] = url
    yield url
    if old is None:
        os.environ.pop("HETEROFLOW_DATABASE_URL", None)
    else:
        os.environ["HETEROFLOW_DATABASE_URL"] = old


def test_idle_llamacpp_sleeps_by_gateway_traffic_then_wakes_on_request(
        up: Up, shared_db: str) -> None:
    up.start()
    model = str(Path(up.home) / "models" / MODEL_FILE)
    r = up.api.post("/task-groups", json={
        "name": "sleepy", "image": "ghcr.io/ggml-org/llama.cpp:server", "engine": "llamacpp",
        "model_path": model, "gpu_required": 0, "idle_timeout_minutes": 30})
    assert r.status_code == 201, r.text
    gid, key = r.json()["id"], r.json()["api_key"]["key"]
    g = wait_for(lambda: up.running(gid, 1), 120, "the engine to run")
    wait_for(lambda: serving(up.base, key, "sleepy"), 60, "the gateway to serve")
    task_id = g["tasks"][0]["id"]

    def quiet() -> bool:  # the gateway published its counters since the last request ended
        with psycopg.connect(shared_db) as conn:
            row = conn.execute(
                "SELECT sum(inflight) + sum(waiting), max(updated_at) > max(last_request_at)"
                " FROM gateway_signals WHERE group_id = %s", (gid,)).fetchone()
        return bool(row and row[0] == 0 and row[1])

    wait_for(quiet, 30, "the gateway's counters to show no request")

    offset = timedelta(0)
    box = SecretBox(load_or_create_key(None, up.home / "secret-key"))

    async def rounds() -> list[str]:
        nonlocal offset
        db = Database(shared_db, max_size=2)
        await db.open()
        agents = AgentClient()
        loop = PolicyLoop(db, None, agents, box, BridgeSettings(home=up.home),
                          clock=lambda: datetime.now(UTC) + offset)
        notes = []
        try:
            for jump in (timedelta(0), timedelta(minutes=29), timedelta(minutes=31)):
                offset = jump
                saved = await loop.round()
                notes += [s.idle_note for s in saved if s.group_id == gid]
        finally:
            await agents.close()
            await db.close()
        return notes

    notes = asyncio.run(rounds())
    assert any("idle for 29.0 of 30 min" in n for n in notes), notes
    assert notes[-1] == "put to sleep: no request at any gateway for 30 min", notes
    slept = up.group(gid)
    assert slept["tasks"][0]["status"] == "sleeping" and slept["status"] == "sleeping", slept
    assert slept["tasks"][0]["id"] == task_id

    def gateway_knows() -> bool:  # it re-reads tasks every second; then it holds and wakes
        pools = httpx.get(up.base + "/gateway/health", timeout=10).json()["pools"]
        return int(pools.get(gid, {}).get("usable", 0)) == 0

    wait_for(gateway_knows, 30, "the gateway to see the service asleep")
    # the next request wakes it (the gateway holds it meanwhile) and is answered
    wait_for(lambda: serving(up.base, key, "sleepy"), 90, "a request to wake and be answered")
    wait_for(lambda: up.running(gid, 1), 60, "the service running again")
    up.stop()


@pytest.fixture
def slow_rounds() -> Iterator[None]:
    """`up`'s own loop (real clock) waits out this test; the test drives rounds itself."""
    os.environ["HETEROFLOW_AUTOSCALE_INTERVAL_SECONDS"] = "600"
    yield
    os.environ.pop("HETEROFLOW_AUTOSCALE_INTERVAL_SECONDS", None)


def test_window_puts_a_real_service_to_sleep_and_a_request_wakes_it(
        up: Up, shared_db: str, slow_rounds: None) -> None:
    up.start()
    model = str(Path(up.home) / "models" / MODEL_FILE)
    r = up.api.post("/task-groups", json={
        "name": "office", "image": "ghcr.io/ggml-org/llama.cpp:server", "engine": "llamacpp",
        "model_path": model, "gpu_required": 0})
    assert r.status_code == 201, r.text
    gid, key = r.json()["id"], r.json()["api_key"]["key"]
    wait_for(lambda: up.running(gid, 1), 120, "the engine to run")
    wait_for(lambda: serving(up.base, key, "office"), 60, "the gateway to serve")
    r = up.api.put(f"/task-groups/{gid}/schedule-window", json={"windows": [
        {"start": "09:00", "end": "17:00", "timezone": "UTC"}], "outside": "sleep"})
    assert r.status_code == 200, r.text

    today = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    box = SecretBox(load_or_create_key(None, up.home / "secret-key"))

    async def rounds(*hours: int) -> None:
        db = Database(shared_db, max_size=2)
        await db.open()
        agents = AgentClient()
        at = today
        loop = PolicyLoop(db, None, agents, box, BridgeSettings(home=up.home),
                          clock=lambda: at)
        try:
            for hour in hours:
                at = today.replace(hour=hour)
                await loop.round()
        finally:
            await agents.close()
            await db.close()

    asyncio.run(rounds(12, 18))  # inside, then past 17:00: the transition puts it to sleep
    g = up.group(gid)
    assert g["status"] == "sleeping", g
    assert g["policy"]["window_inside"] is False
    assert g["policy"]["next_transition"].startswith(
        (today + timedelta(days=1)).strftime("%Y-%m-%dT09:00"))

    def gateway_knows() -> bool:
        pools = httpx.get(up.base + "/gateway/health", timeout=10).json()["pools"]
        return int(pools.get(gid, {}).get("usable", 0)) == 0

    wait_for(gateway_knows, 30, "the gateway to see the service asleep")
    wait_for(lambda: serving(up.base, key, "office"), 90, "a request to wake it")
    wait_for(lambda: up.running(gid, 1), 60, "the service running again")
    asyncio.run(rounds(18, 19))  # still outside: no transition, so it stays awake
    assert up.group(gid)["status"] == "running"
    up.stop()
