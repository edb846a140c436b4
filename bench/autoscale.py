"""Autoscaler benchmark, printed, not asserted.

1. One policy round's cost for N autoscaled services (default 1,000: groups, tasks, gateway
   counters in a real embedded PostgreSQL), beside an empty round (no managed service) in
   the same run: the loop's floor (two transactions) against its real work (load, decide
   per service, save what changed).
2. With ``--reaction``: real processes, as a user runs them: `heteroflow up`, a llama.cpp
   service with concurrent_requests target 1, min 1, max 2; the time from the start of a
   load of 4 concurrent streaming clients to the second replica running and to both serving.

    .venv/bin/python -m bench.autoscale [--services 1000] [--rounds 7] [--reaction]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psycopg

from bridge.agents.client import AgentClient
from bridge.crypto import SecretBox
from bridge.services.policy_loop import PolicyLoop
from bridge.settings import BridgeSettings
from bridge.storage.db import Database
from bridge.storage.embedded import EmbeddedPostgres
from bridge.storage.migrate import apply_migrations

KEY = "x0n7qX2V3wKo8C0Ff2m1bMmkKQyq8zE7rS0h3Qd8Y6A="
POLICY = {"metric": "concurrent_requests", "target_value": 4, "cooldown_seconds": 60}
HEALTH = {"type": "http", "path": "/health", "interval_seconds": 10, "timeout_seconds": 3,
          "unhealthy_threshold": 3}


def seed(url: str, services: int) -> None:
    """N running autoscaled services with one running task each, and one gateway's counters
    (4 in flight each: at the target, so every round decides "steady" and moves nothing)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM task_groups")
        conn.execute("DELETE FROM gateway_signals")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO task_groups (id, name, status, parallelism, world_size,"
                " node_count, min_replicas, max_replicas, auto_scale, image, engine,"
                " model_path, model_name, gpu_required, ports, qos, health_check,"
                " scale_policy) VALUES (%s, %s, 'running', 'none', 1, 1, 1, 4, true,"
                " 'vllm/vllm-openai:v0.11.0', 'vllm', '/models/m', %s, 1, %s, 'gold', %s, %s)",
                [(gid(i), f"svc-{i}", f"svc-{i}", json.dumps([{"container": 8000,
                                                                "host": None}]),
                  json.dumps(HEALTH), json.dumps(POLICY)) for i in range(services)])
            cur.executemany(
                "INSERT INTO tasks (id, group_id, rank, status, image, gpu_required, gpu_id,"
                " node_id, model_path, ports) VALUES (%s, %s, 0, 'running',"
                " 'vllm/vllm-openai:v0.11.0', 1, '0', 'n1', '/models/m', '[]')",
                [(f"task-{i:04x}-r0-{gid(i)}", gid(i)) for i in range(services)])
            cur.executemany(
                "INSERT INTO gateway_signals (gateway_id, group_id, inflight, waiting,"
                " requests) VALUES ('bench', %s, 4, 0, 10)",
                [("",)] + [(gid(i),) for i in range(services)])


def gid(i: int) -> str:
    return f"tg-{1_700_000_000_000_000_000 + i}-{i % 65536:04x}"


async def time_rounds(url: str, rounds: int, home: Path) -> list[float]:
    db = Database(url, max_size=2)
    await db.open()
    agents = AgentClient()
    loop = PolicyLoop(db, None, agents, SecretBox(KEY), BridgeSettings(home=home))
    took = []
    try:
        for _ in range(rounds):
            with psycopg.connect(url, autocommit=True) as conn:  # keep the counters fresh
                conn.execute("UPDATE gateway_signals SET updated_at = now()")
            started = time.perf_counter()
            await loop.round()
            took.append(time.perf_counter() - started)
    finally:
        await agents.close()
        await db.close()
    return took


def round_cost(services: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="hf-bench-") as tmp:
        pg = EmbeddedPostgres(Path(tmp) / "pgdata")
        url = pg.start()
        try:
            asyncio.run(apply_migrations(url))
            seed(url, 0)
            empty = asyncio.run(time_rounds(url, rounds, Path(tmp)))
            seed(url, services)
            full = asyncio.run(time_rounds(url, rounds, Path(tmp)))
        finally:
            pg.stop()
    ms = [x * 1000 for x in full[1:]]  # the first round loads the schedule caches
    floor = [x * 1000 for x in empty[1:]]
    print(f"policy round, {services} autoscaled services: median {statistics.median(ms):.1f} "
          f"ms, max {max(ms):.1f} ms ({statistics.median(ms) / services * 1000:.0f} us per "
          f"service); empty round: median {statistics.median(floor):.1f} ms")


def reaction() -> None:
    from tests.integration.test_autoscale_local import Load
    from tests.integration.test_local_e2e import Up, serving, wait_for
    from tests.support.demo_model import MODEL_FILE, model_source

    os.environ["HETEROFLOW_AUTOSCALE_INTERVAL_SECONDS"] = "1"
    os.environ["HETEROFLOW_AUTOSCALE_WINDOW_SECONDS"] = "3"
    with tempfile.TemporaryDirectory(prefix="hf-bench-") as tmp:
        home = Path(tmp) / "home"
        (home / "models").mkdir(parents=True)
        shutil.copyfile(model_source(), home / "models" / MODEL_FILE)
        up = Up(home)
        up.start()
        load = None
        try:
            r = up.api.post("/task-groups", json={
                "name": "bench", "image": "ghcr.io/ggml-org/llama.cpp:server",
                "engine": "llamacpp", "model_path": str(home / "models" / MODEL_FILE),
                "gpu_required": 0})
            gid_, key = r.json()["id"], r.json()["api_key"]["key"]
            wait_for(lambda: up.running(gid_, 1), 180, "the engine")
            wait_for(lambda: serving(up.base, key, "bench"), 60, "serving")
            up.api.put(f"/task-groups/{gid_}/scale-policy", json={
                "auto_scale": True, "min_replicas": 1, "max_replicas": 2,
                "metric": "concurrent_requests", "target_value": 1, "cooldown_seconds": 30,
                "up_delay_seconds": 2, "down_delay_seconds": 5})
            load = Load(up.base, key, "bench", clients=4)
            started = time.monotonic()
            load.start()
            wait_for(lambda: up.running(gid_, 2), 300, "two replicas")
            running_s = time.monotonic() - started
            wait_for(lambda: len(load.backends - {"?"}) >= 2, 120, "both serving")
            serving_s = time.monotonic() - started
            load.finish()
            print(f"load start -> second replica running: {running_s:.1f} s; -> both serving: "
                  f"{serving_s:.1f} s (round 1 s, window 3 s, up delay 2 s); "
                  f"{load.done} requests, {len(load.failures)} failed")
        finally:
            if load is not None:
                load.finish()
            up.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reaction", action="store_true",
                        help="also measure the reaction to load with real processes")
    args = parser.parse_args()
    round_cost(args.services, args.rounds)
    if args.reaction:
        reaction()


if __name__ == "__main__":
    main()
