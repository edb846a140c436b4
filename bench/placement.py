"""Placement benchmark: 1,000 services on 200 fake 8-GPU nodes through the REST API.

Real processes: embedded PostgreSQL, the Nomad API double (`python -m tests.support.nomad_double`,
its scheduler and an auto runner), and the bridge (`heteroflow server`) with its reconciler.
Printed side by side, from the same run:

* the API's latency for POST /api/v1/task-groups (p50/p99) next to GET /healthz, the same
  server's floor, at the same concurrency;
* the time until every task row shows its allocation (node, GPU, address), next to the time
  the double alone needs to place the same jobs registered straight into it;
* the bridge's resident memory.

    .venv/bin/python -m bench.placement [--services 1000] [--nodes 200] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from bridge.storage.embedded import EmbeddedPostgres

ROOT = Path(__file__).resolve().parents[1]
KEY = "x0n7qX2V3wKo8C0Ff2m1bMmkKQyq8zE7rS0h3Qd8Y6A="


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def wait_http(url: str, timeout: float = 60.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                await client.get(url, timeout=1)
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


async def timed_requests(client: httpx.AsyncClient, make: list[tuple[str, str, dict | None]],
                         concurrency: int) -> tuple[list[float], int]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors = 0

    async def one(method: str, path: str, body: dict | None) -> None:
        nonlocal errors
        async with gate:
            t0 = time.perf_counter()
            r = await client.request(method, path, json=body)
            latencies.append(time.perf_counter() - t0)
            errors += r.status_code >= 400

    await asyncio.gather(*(one(*m) for m in make))
    return latencies, errors


async def probe_while(base: str, busy: asyncio.Task[Any]) -> list[float]:
    """/healthz one request at a time, on its own connection, while ``busy`` runs: what an
    operator's health check sees of a server under a burst of creates."""
    seen: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        while not busy.done():
            t0 = time.perf_counter()
            await client.get("/healthz")
            seen.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)
    return seen or [float("nan")]


def service(i: int) -> dict:
    return {"name": f"bench-{i:05d}", "image": "vllm/vllm-openai:latest",
            "model_path": f"/models/model-{i % 50}", "gpu_required": 1,
            "estimated_gpu_memory_mb": 20_000}


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hf-bench-"))
    pg = EmbeddedPostgres(tmp / "pg")
    url = pg.start()
    nomad_port, bridge_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    double = subprocess.Popen(
        [sys.executable, "-m", "tests.support.nomad_double", "--port", str(nomad_port),
         "--fleet", "gpu",
         "--nodes", str(args.nodes), "--runner", "auto"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bridge_env = {**env, "HETEROFLOW_DATABASE_URL": url, "HETEROFLOW_HOME": str(tmp / "home"),
                  "HETEROFLOW_SECRET_KEY": KEY, "NOMAD_ADDR": f"http://127.0.0.1:{nomad_port}",
                  "HETEROFLOW_MODEL_ROOTS": "/models", "HETEROFLOW_LOG_LEVEL": "WARNING",
                  "HETEROFLOW_DB_POOL_MAX": "16"}
    log_file = open(tmp / "bridge.log", "w")  # noqa: SIM115 - lives as long as the bridge
    bridge = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli.main", "server", "--port", str(bridge_port)],
        cwd=ROOT, env=bridge_env, stdout=subprocess.DEVNULL, stderr=log_file)
    proc = psutil.Process(bridge.pid)
    double_proc = psutil.Process(double.pid)
    double_rss = 0
    spies = []
    if args.profile:
        # The double too: every call the bridge makes costs the double CPU on the same cores.
        for pid, out in ((bridge.pid, args.profile),
                         (double.pid, args.profile.with_suffix(".double.json"))):
            spies.append(subprocess.Popen(
                ["py-spy", "record", "-o", str(out), "-f", "speedscope", "-p", str(pid),
                 "-r", "200"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    peak_rss = 0
    try:
        await wait_http(f"http://127.0.0.1:{nomad_port}/v1/nodes")
        await wait_http(f"http://127.0.0.1:{bridge_port}/healthz")
        token = (tmp / "home" / "admin-token").read_text().strip()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bridge_port}",
                                     headers={"Authorization": f"Bearer {token}"},
                                     timeout=60, limits=httpx.Limits(
                                         max_connections=args.concurrency)) as client:
            floor, _ = await timed_requests(
                client, [("GET", "/healthz", None)] * args.services, args.concurrency)
            started = time.monotonic()
            creating = asyncio.create_task(timed_requests(
                client, [("POST", "/api/v1/task-groups", service(i))
                         for i in range(args.services)], args.concurrency))
            loaded = await probe_while(f"http://127.0.0.1:{bridge_port}", creating)
            created, errors = await creating
            api_done = time.monotonic() - started
            placed = 0
            while placed < args.services and time.monotonic() - started < args.timeout:
                peak_rss = max(peak_rss, proc.memory_info().rss)
                double_rss = max(double_rss, double_proc.memory_info().rss)
                with psycopg.connect(url) as conn:
                    row = conn.execute("SELECT count(*) FROM tasks WHERE node_name IS NOT NULL"
                                       " AND gpu_id IS NOT NULL AND address IS NOT NULL"
                                       " AND status = 'running'").fetchone()
                placed = int(row[0]) if row else 0
                await asyncio.sleep(0.2)
            converged = time.monotonic() - started
            peak_rss = max(peak_rss, proc.memory_info().rss)
        baseline = light = float("nan")
        if not args.simulate:
            baseline = await direct_baseline(args)
            light = await direct_baseline(args, light=True)
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=60)
        for p in (bridge, double):
            p.send_signal(signal.SIGINT)
        for p in (bridge, double):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        pg.remove()  # the data is throwaway, wherever it lives

    print(f"\nplacement benchmark: {args.services} services, {args.nodes} nodes x 8 GPUs, "
          f"concurrency {args.concurrency}, {os.cpu_count()} cores")
    print(f"{'':44}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'GET /healthz (same server, floor)':44}{pct(floor, .5):10.2f}{pct(floor, .99):10.2f}")
    print(f"{'GET /healthz, one at a time, during creates':44}{pct(loaded, .5):10.2f}"
          f"{pct(loaded, .99):10.2f}")
    print(f"{'POST /api/v1/task-groups':44}{pct(created, .5):10.2f}"
          f"{pct(created, .99):10.2f}   errors: {errors}")
    print(f"{'':44}{'seconds':>10}")
    print(f"{'all creates answered':44}{api_done:10.2f}")
    print(f"{'every task row shows its allocation':44}{converged:10.2f}   "
          f"({placed}/{args.services} placed)")
    print(f"{'baseline: same jobs straight into the double':44}{baseline:10.2f}")
    print(f"{'ratio: convergence / double alone':44}{converged / baseline:10.2f}x")
    print(f"{'earlier baseline: lighter fixture job':44}{light:10.2f}   "
          f"(ratio {converged / light:.2f}x)")
    print(f"{'bridge peak RSS':44}{peak_rss / 2**20:10.1f} MiB")
    print(f"{'Nomad double peak RSS':44}{double_rss / 2**20:10.1f} MiB")
    print(f"mean create latency {statistics.mean(created) * 1000:.2f} ms; bridge log: "
          f"{tmp / 'bridge.log'}")


async def direct_baseline(args: argparse.Namespace, *, light: bool = False) -> float:
    """Register and place the same number of jobs with no bridge: the double's own time.

    The jobs are the bridge's own rendering of a bench service (device, VRAM constraint,
    affinities: what the bridge registers). ``light`` is the earlier yardstick, the golden
    fixture without its VRAM constraint, which costs the double's scheduler about half as
    much per job (printed too, to compare with earlier runs).
    """
    port = free_port()
    double = subprocess.Popen(
        [sys.executable, "-m", "tests.support.nomad_double", "--port", str(port), "--fleet", "gpu",
         "--nodes", str(args.nodes), "--runner", "auto"], cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_http(f"http://127.0.0.1:{port}/v1/nodes")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            if light:
                template = (ROOT / "tests" / "fixtures" / "jobspecs" /
                            "vllm-nvidia-single.hcl").read_text()
                job = (await client.post("/v1/jobs/parse", json={"JobHCL": template,
                                                                 "Canonicalize": True})).json()
                job["TaskGroups"][0]["Tasks"][0]["Resources"]["Devices"][0]["Constraints"] = []
            else:
                job = await bench_job()
            started = time.monotonic()
            bodies = []
            for i in range(args.services):
                j = dict(job, ID=f"hf-direct-{i}", Name=f"hf-direct-{i}")
                bodies.append(("POST", "/v1/jobs", {"Job": j}))
            await timed_requests(client, bodies, args.concurrency)
            return time.monotonic() - started
    finally:
        double.send_signal(signal.SIGINT)
        double.wait(timeout=15)


async def bench_job() -> dict[str, Any]:
    """The job JSON the bridge registers for service(0), rendered without a database."""
    from bridge.nomad.jobjson import job_json
    from tests.support.jobspec_render import rendered_context

    spec = service(0)
    context = await rendered_context(
        name=spec["name"], image=spec["image"], model_path=spec["model_path"],
        gpu_required=spec["gpu_required"],
        estimated_gpu_memory_mb=spec["estimated_gpu_memory_mb"])
    return job_json(context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--profile", type=Path, default=None,
                        help="record the bridge with py-spy into this speedscope file")
    parser.add_argument("--simulate", action="store_true",
                        help="the scale simulation of docs/scale.md: 5,000 services on 2,000 "
                             "nodes, no baselines, convergence time and memory")
    args = parser.parse_args()
    if args.simulate:
        args.services, args.nodes, args.timeout = 5000, 2000, max(args.timeout, 1800.0)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
