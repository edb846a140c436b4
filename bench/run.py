"""The gateway's benchmark: requests/s and latency against its upstream alone and nginx.

One run starts a fast fake upstream, nginx as a reverse proxy to it (the practical limit
of a proxy), and the gateway with one worker (embedded PostgreSQL, one route, one key),
then drives each with wrk and prints:

    (a) the upstream directly, (b) nginx -> upstream, (c) gateway -> upstream
    for non-streaming chat and for streaming chat (64 chunks), at concurrency 32,
    the latency each adds at concurrency 1, and the gateway's memory over a million requests.

The proxy under test (nginx's one worker, or the gateway) runs pinned to CPU 0; wrk and the
upstream share CPU 1, the same for every target, so the numbers compare. Needs ``wrk`` and
``nginx`` (``apt-get install -y wrk nginx``). Not a test: numbers depend on the machine.

    .venv/bin/python -m bench.run [--seconds 10] [--million] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from bench import streams
from heteroflow_contracts.credentials import hash_secret

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-bench-0000-0000"
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Hello"}]}


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--million", action="store_true",
                        help="also send 1,000,000 requests through the gateway, sampling RSS")
    parser.add_argument("--no-pin", action="store_true",
                        help="let the OS place every process (the setting of the reference "
                             "numbers in docs/environment.md) instead of pinning the proxy")
    parser.add_argument("--profile", action="store_true",
                        help="run the gateway under cProfile and print where its time goes")
    parser.add_argument("--streams", action="store_true",
                        help="also 256 and 1,000 concurrent paced streams (bench/streams.py)")
    parser.add_argument("--workers", action="store_true",
                        help="also req/s of the gateway with 1 and 2 workers, unpinned")
    parser.add_argument("--no-wrk", action="store_true",
                        help="skip the wrk table (with --streams or --workers)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"bench needs {tool}: apt-get install -y wrk nginx util-linux")
    with tempfile.TemporaryDirectory(prefix="hf-bench-") as tmp:
        Bench(Path(tmp), args).run()


class Bench:
    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.args = args
        self.procs: list[subprocess.Popen[bytes]] = []
        self._pg: Any = None
        self._url = ""

    def run(self) -> None:
        try:
            upstream = self.start_upstream()
            nginx = self.start_nginx(upstream)
            gateway_port, gateway = self.start_gateway(upstream)
            targets = {"upstream": f"http://127.0.0.1:{upstream}",
                       "nginx": f"http://127.0.0.1:{nginx}",
                       "gateway": f"http://127.0.0.1:{gateway_port}"}
            self.report(targets, gateway)
        finally:
            for proc in reversed(self.procs):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            if self._pg is not None:
                self._pg.remove()  # the data is throwaway, wherever it lives

    # -- the three servers -------------------------------------------------------------------

    def spawn(self, args: list[str], cpu: int | str, log: str,
              env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = (self.tmp / log).open("wb")
        proc = subprocess.Popen([*self.pin(cpu), *args], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        self.procs.append(proc)
        return proc

    def pin(self, cpu: int | str) -> list[str]:
        return [] if self.args.no_pin else ["taskset", "-c", str(cpu)]

    def start_upstream(self) -> int:
        port = free_port()
        self.spawn([sys.executable, "-m", "bench.fake_upstream", "--port", str(port),
                    "--chunks", "64"], 1, "upstream.log")
        wait_http(f"http://127.0.0.1:{port}/v1/models")
        return port

    def start_nginx(self, upstream: int) -> int:
        port = free_port()
        prefix = self.tmp / "nginx"
        (prefix / "logs").mkdir(parents=True)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(port=port, upstream=upstream, prefix=prefix))
        self.spawn(["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"], 0,
                   "nginx.log")
        wait_http(f"http://127.0.0.1:{port}/v1/models")
        return port

    def start_gateway(self, upstream: int, workers: int = 1,
                      cpu: str = "0") -> tuple[int, subprocess.Popen[bytes]]:
        from bridge.storage.embedded import EmbeddedPostgres  # the bench's own database
        from bridge.storage.migrate import apply_migrations

        if self._pg is None:
            pg = EmbeddedPostgres(self.tmp / "pgdata")
            self._url = pg.start()
            self._pg = pg
            asyncio.run(apply_migrations(self._url))
            seed(self._url, f"127.0.0.1:{upstream}")
        url = self._url
        port = free_port()
        env = {"HETEROFLOW_DATABASE_URL": url, "HETEROFLOW_PORT": str(port),
               "HETEROFLOW_WORKERS": str(workers), "HETEROFLOW_LOG_LEVEL": "WARNING",
               "HETEROFLOW_HOME": str(self.tmp / "home"), "CONSUL_HTTP_ADDR": ""}
        command = [sys.executable, "-m", "gateway"]
        if self.args.profile:
            command = [sys.executable, "-m", "cProfile", "-o", str(self.tmp / "gateway.prof"),
                       "-m", "gateway"]
        proc = self.spawn(command, cpu, f"gateway-{port}.log", env)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/gateway/health")
        for _ in range(100):
            r = httpx.post(base + "/v1/chat/completions", json=BODY,
                           headers={"Authorization": f"Bearer {KEY}"})
            if r.status_code == 200:
                break
            time.sleep(0.1)
        else:
            sys.exit(f"the gateway does not serve: {r.status_code} {r.text}")
        return port, proc

    # -- measuring ---------------------------------------------------------------------------

    def wrk(self, url: str, *, stream: bool, connections: int, seconds: int,
            cpu: int | str = 1, threads: int = 1) -> Result:
        body = json.dumps({**BODY, "stream": stream})
        script = self.tmp / f"post-{int(stream)}.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = '{body}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {KEY}"\n')
        out = subprocess.run(
            [*self.pin(cpu), "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
             "--latency", "-s", str(script), url + "/v1/chat/completions"],
            capture_output=True, text=True, check=True).stdout
        return parse_wrk(out)

    def report(self, targets: dict[str, str], gateway: subprocess.Popen[bytes]) -> None:
        if not self.args.no_wrk:
            self.report_wrk(targets, gateway)
        if self.args.streams:
            streams.report(self.pin(1), targets, KEY, self.args.seconds,
                           lambda: rss_mb(worker_pid(gateway.pid)), token_ms=20.0)
        if self.args.workers:
            self.report_workers(targets)

    def report_workers(self, targets: dict[str, str]) -> None:
        """The same gateway with 1 and 2 workers, every process placed by the OS."""
        upstream = int(targets["upstream"].rsplit(":", 1)[1])
        print(f"\nworkers: wrk -t2 -c{self.args.connections} -d{self.args.seconds}s, "
              "plain chat, processes placed by the OS")
        rates, per_cpu = {}, {}
        for n in (1, 2):
            port, proc = self.start_gateway(upstream, workers=n, cpu="0-1")
            url = f"http://127.0.0.1:{port}"
            self.wrk(url, stream=False, connections=self.args.connections, seconds=2,
                     cpu="0-1", threads=2)
            tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            before = {p.pid: sum(p.cpu_times()[:2]) for p in tree}
            rates[n] = self.wrk(url, stream=False, connections=self.args.connections,
                                seconds=self.args.seconds, cpu="0-1", threads=2)
            # CPU seconds per process: shows whether the second worker took its share.
            used = [sum(p.cpu_times()[:2]) - before[p.pid] for p in tree]
            busy = " ".join(f"{u:.1f}" for u in used)
            per_cpu[n] = rates[n].requests / max(sum(used), 1e-9)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
            print(f"  {n} worker{'s' if n > 1 else ' '} {rates[n].rps:>10,.0f} req/s  "
                  f"p50 {rates[n].p50_ms:.2f} ms  errors {rates[n].errors}  "
                  f"CPU s per process: {busy}  ({per_cpu[n]:,.0f} requests per CPU s)")
        # On 2 cores wrk and the upstream need CPU too, so req/s cannot double; requests per
        # CPU second staying flat says the workers themselves scale.
        print(f"  2 workers / 1 worker: {rates[2].rps / rates[1].rps:.2f}x req/s, "
              f"{per_cpu[2] / per_cpu[1]:.2f}x requests per CPU second")

    def report_wrk(self, targets: dict[str, str], gateway: subprocess.Popen[bytes]) -> None:
        seconds, conns = self.args.seconds, self.args.connections
        placement = ("processes placed by the OS" if self.args.no_pin else
                     "proxy on CPU 0, wrk and upstream on CPU 1")
        print(f"\nwrk -t1 -c{conns} -d{seconds}s; {placement}\n")
        print(f"{'target':<10} {'mode':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'errors':>7}")
        table: dict[tuple[str, bool], Result] = {}
        for stream in (False, True):
            for name, url in targets.items():
                self.wrk(url, stream=stream, connections=conns, seconds=2)  # warm up
                result = self.wrk(url, stream=stream, connections=conns, seconds=seconds)
                table[(name, stream)] = result
                mode = "stream64" if stream else "plain"
                print(f"{name:<10} {mode:<10} {result.rps:>10,.0f} {result.p50_ms:>8.2f} "
                      f"{result.p99_ms:>8.2f} {result.errors:>7}")
        for stream in (False, True):
            share = table[("gateway", stream)].rps / table[("nginx", stream)].rps
            print(f"gateway / nginx ({'stream64' if stream else 'plain'}): {share:.0%}")

        print("\nconcurrency 1 (plain), p50 latency and what the proxy adds:")
        single = {name: self.wrk(url, stream=False, connections=1, seconds=seconds)
                  for name, url in targets.items()}
        for name in ("nginx", "gateway"):
            added = (single[name].p50_ms - single["upstream"].p50_ms) * 1000
            print(f"  {name:<8} p50 {single[name].p50_ms * 1000:7.0f} us  (adds {added:5.0f} us;"
                  f" upstream alone {single['upstream'].p50_ms * 1000:.0f} us)")
        overhead = httpx.post(targets["gateway"] + "/v1/chat/completions", json=BODY,
                              headers={"Authorization": f"Bearer {KEY}"}).headers[
            "x-heteroflow-overhead-ms"]
        print(f"  gateway's own x-heteroflow-overhead-ms on one request: {overhead}")

        if self.args.million:
            self.million(targets["gateway"], gateway.pid)
        if self.args.profile:
            gateway.send_signal(signal.SIGINT)
            gateway.wait(timeout=30)
            print_profile(self.tmp / "gateway.prof")

    def million(self, url: str, pid: int) -> None:
        print("\ngateway memory over 1,000,000 requests (RSS of the worker):")
        worker = worker_pid(pid)
        print(f"  {0:>9,} requests  {rss_mb(worker):6.1f} MB")
        sent = 0
        while sent < 1_000_000:
            result = self.wrk(url, stream=False, connections=self.args.connections, seconds=20)
            sent += result.requests
            print(f"  {sent:>9,} requests  {rss_mb(worker):6.1f} MB  ({result.rps:,.0f} req/s)")


NGINX_CONF = """
worker_processes 1;
error_log {prefix}/logs/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    upstream fake {{ server 127.0.0.1:{upstream}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


def seed(url: str, address: str) -> None:
    health = json.dumps({"type": "tcp", "path": "/health", "interval_seconds": 10,
                         "timeout_seconds": 3, "unhealthy_threshold": 3})
    with psycopg.connect(url) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO task_groups (id, name, parallelism, world_size, node_count, image,"
            " model_path, model_name, gpu_required, ports, health_check, endpoint_id)"
            " VALUES ('tg-bench', 'bench', 'none', 1, 1, 'bench', '/m', 'bench', 0, '[]', %s,"
            " 'ep-bench')", (health,))
        conn.execute("INSERT INTO inference_endpoints (id, name, task_group_id, port,"
                     " health_check) VALUES ('ep-bench', 'bench', 'tg-bench', 8000, %s)",
                     (health,))
        conn.execute("INSERT INTO model_routes (id, model_name, task_group_id)"
                     " VALUES ('mr-bench', 'bench', 'tg-bench')")
        conn.execute("INSERT INTO tasks (id, group_id, rank, status, image, gpu_required,"
                     " model_path, ports, address) VALUES ('task-bench', 'tg-bench', 0,"
                     " 'running', 'bench', 0, '/m', '[]', %s)", (address,))
        conn.execute("INSERT INTO api_keys (id, endpoint_id, name, key_prefix, key_hash)"
                     " VALUES ('key-bench', 'ep-bench', 'bench', 'sk-bench', %s)",
                     (hash_secret(KEY),))


def parse_wrk(out: str) -> Result:
    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    return Result(rps, ms("50%"), ms("99%"), requests, errors)


def worker_pid(pid: int) -> int:
    """The process that serves: the gateway itself (one worker runs in-process)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    kids = children.read_text().split() if children.exists() else []
    # taskset execs the command in place; the python process is the pid itself.
    return int(kids[0]) if kids else pid


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def print_profile(path: Path) -> None:
    import pstats

    print("\nwhere the gateway's time goes (cProfile, top 25 by own time):")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(25)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    sys.exit(f"{url} did not answer within {timeout} s")


if __name__ == "__main__":
    main()
