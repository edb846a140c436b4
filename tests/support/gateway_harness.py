"""Real processes for gateway tests: engine doubles, the gateway, a Consul dev agent, rows.

Everything listens on 127.0.0.1 with free ports and is stopped by the fixture that started
it. Rows are written with plain SQL, as the bridge's REST API would write them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from heteroflow_contracts.credentials import hash_secret
from tests.support.pg import free_port

ROOT = Path(__file__).resolve().parents[2]
CONSUL_BIN = ROOT / ".cache" / "consul" / "usr" / "bin" / "consul"

FAST_HEALTH = {"type": "http", "path": "/health", "interval_seconds": 0.2,
               "timeout_seconds": 1, "unhealthy_threshold": 1}


def wait_until(check: Any, timeout: float = 10.0, interval: float = 0.05,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.TransportError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class Proc:
    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(args, cwd=ROOT, env={**os.environ, **(env or {})},
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text()


class Double(Proc):
    """One engine double process (vLLM-like)."""

    def __init__(self, logs: Path, name: str, model: str, port: int | None = None,
                 extra: list[str] | None = None) -> None:
        self.name = name
        self.model = model
        self.port = port or free_port()
        super().__init__([sys.executable, "-m", "tests.support.engine_double",
                          "--port", str(self.port),
                          "--name", name, "--model", model, *(extra or [])],
                         logs / f"double-{name}-{self.port}.log")
        self.url = f"http://127.0.0.1:{self.port}"
        self.address = f"127.0.0.1:{self.port}"
        wait_until(lambda: self.alive() and httpx.get(self.url + "/_stats", timeout=1)
                   .status_code == 200, what=f"engine double {name}")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        # A double may hold requests open on purpose ("hang"); it owes nobody a clean exit.
        super().stop(sig)

    def control(self, **settings: Any) -> None:
        httpx.post(self.url + "/_control", json=settings, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(self.url + "/_stats", timeout=5).json()
        return result

    def reset(self) -> None:
        httpx.post(self.url + "/_reset", timeout=5).raise_for_status()

    def restart(self) -> None:
        """Start again on the same port (after a kill)."""
        self.__init__(self.log_path.parent, self.name, self.model, self.port)  # type: ignore[misc]


class Gateway(Proc):
    def __init__(self, logs: Path, db_url: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {
            "HETEROFLOW_DATABASE_URL": db_url,
            "HETEROFLOW_HOST": "127.0.0.1",
            "HETEROFLOW_PORT": str(self.port),
            "HETEROFLOW_REFRESH_INTERVAL_S": "0.2",
            "HETEROFLOW_KEY_RECHECK_INTERVAL_S": "0.2",
            "HETEROFLOW_USAGE_FLUSH_INTERVAL_S": "0.5",
            "HETEROFLOW_COOLDOWN_S": "1",
            "HETEROFLOW_LOG_LEVEL": "INFO",
            "HETEROFLOW_HOME": str(logs / "gateway-home"),
        }
        settings.update(env)
        if "CONSUL_HTTP_ADDR" not in env:
            settings["CONSUL_HTTP_ADDR"] = ""
        super().__init__([sys.executable, "-m", "gateway"], logs / f"gateway-{self.port}.log",
                         env=settings)
        wait_until(lambda: self.alive() and httpx.get(self.url + "/gateway/health", timeout=1)
                   .status_code == 200, timeout=30, what="gateway health")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(self.url + "/gateway/health", timeout=5).json()
        return result

    def usable(self, pool: str) -> int:
        """Usable backends of one pool (a task group id)."""
        return int(self.health()["pools"].get(pool, {}).get("usable", 0))

    def wait_usable(self, pool: str, n: int, timeout: float = 10.0) -> None:
        wait_until(lambda: self.usable(pool) >= n, timeout=timeout,
                   what=f"{n} usable backends in {pool}")

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics", timeout=5).text

    def chat(self, key: str, model: str, **body: Any) -> httpx.Response:
        payload = {"model": model, "messages": [{"role": "user", "content": "hi"}], **body}
        return httpx.post(self.url + "/v1/chat/completions", json=payload, timeout=30,
                          headers={"Authorization": f"Bearer {key}"})

    def wait_serving(self, key: str, model: str, timeout: float = 10.0) -> httpx.Response:
        """Until a chat request for ``model`` succeeds (routes and health propagated)."""
        return wait_until(lambda: (r := self.chat(key, model)).status_code == 200 and r,
                          timeout=timeout, what=f"model {model} to serve")


class World:
    """Rows in the bridge's tables, written as the REST API would."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cur = conn.execute(query.encode(), params)
            return cur.fetchall() if cur.description else []

    def add_group(self, name: str, model: str | None = None, *,
                  health: dict[str, Any] | None = None,
                  algorithm: str = "round_robin", route: bool = True) -> Group:
        """A task group with its endpoint, one API key, and (by default) its own route."""
        suffix = uuid.uuid4().hex[:8]
        group_id, endpoint_id = f"tg-{suffix}", f"ep-{suffix}"
        model = model or name
        hc = json.dumps(health or FAST_HEALTH)
        with psycopg.connect(self.db_url) as conn, conn.transaction():
            conn.execute(
                "INSERT INTO task_groups (id, name, parallelism, world_size, node_count, image,"
                " model_path, model_name, gpu_required, ports, health_check, endpoint_id)"
                " VALUES (%s, %s, 'none', 1, 1, 'img', '/m', %s, 0, '[]', %s, %s)",
                (group_id, name, model, hc, endpoint_id))
            conn.execute(
                "INSERT INTO inference_endpoints (id, name, task_group_id, port, algorithm,"
                " health_check) VALUES (%s, %s, %s, 8000, %s, %s)",
                (endpoint_id, name, group_id, algorithm, hc))
        group = Group(self, group_id, endpoint_id, name, model)
        group.key = self.add_key(endpoint_id)
        if route:
            group.route_id = self.add_route(model, group_id=group_id)
        return group

    def add_key(self, endpoint_id: str) -> str:
        key = f"sk-{uuid.uuid4()}"
        self.sql("INSERT INTO api_keys (id, endpoint_id, name, key_prefix, key_hash)"
                 " VALUES (%s, %s, 'test', %s, %s)",
                 (f"key-{uuid.uuid4().hex[:12]}", endpoint_id, key[:11],
                  hash_secret(key)))
        return key

    def key_id(self, key: str) -> str:
        return str(self.sql("SELECT id FROM api_keys WHERE key_hash = %s",
                            (hash_secret(key),))[0][0])

    def revoke(self, key: str) -> None:
        self.sql("UPDATE api_keys SET revoked_at = now() WHERE key_hash = %s",
                 (hash_secret(key),))

    def add_route(self, model: str, *, group_id: str | None = None, priority: int = 0,
                  weight: int = 100, version: str | None = None, algorithm: str | None = None,
                  upstream_url: str | None = None, upstream_key: str | None = None,
                  upstream_model: str | None = None) -> str:
        route_id = f"mr-{uuid.uuid4().hex[:16]}"
        self.sql("INSERT INTO model_routes (id, model_name, task_group_id, priority, weight,"
                 " version, algorithm, upstream_url, upstream_key_encrypted, upstream_model)"
                 " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                 (route_id, model, group_id, priority, weight, version or route_id[-6:],
                  algorithm, upstream_url, upstream_key, upstream_model))
        return route_id

    def update_route(self, route_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = %s" for k in fields)
        self.sql(f"UPDATE model_routes SET {sets} WHERE id = %s", (*fields.values(), route_id))

    def add_task(self, group_id: str, address: str | None, status: str = "running",
                 alloc_id: str | None = None) -> str:
        rank = self.sql("SELECT count(*) FROM tasks WHERE group_id = %s", (group_id,))[0][0]
        task_id = f"task-{uuid.uuid4().hex[:8]}-r{rank}-{group_id}"
        self.sql("INSERT INTO tasks (id, group_id, rank, status, image, gpu_required,"
                 " model_path, ports, address, alloc_id)"
                 " VALUES (%s, %s, %s, %s, 'img', 0, '/m', '[]', %s, %s)",
                 (task_id, group_id, rank, status, address, alloc_id))
        return task_id

    def set_task(self, task_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = %s" for k in fields)
        self.sql(f"UPDATE tasks SET {sets} WHERE id = %s", (*fields.values(), task_id))


class Group:
    def __init__(self, world: World, group_id: str, endpoint_id: str, name: str,
                 model: str) -> None:
        self.world = world
        self.id = group_id
        self.endpoint_id = endpoint_id
        self.name = name
        self.model = model
        self.key = ""
        self.route_id = ""

    def add_task(self, double: Double | None, status: str = "running",
                 alloc_id: str | None = None) -> str:
        return self.world.add_task(self.id, double.address if double else None, status,
                                   alloc_id)


class Consul(Proc):
    """``consul agent -dev`` on free loopback ports (every port given)."""

    def __init__(self, logs: Path, ports: dict[str, int] | None = None) -> None:
        if not CONSUL_BIN.is_file():
            raise AssertionError(
                f"the Consul binary is missing at {CONSUL_BIN}: run scripts/install-consul.sh "
                "(make test does) to fetch consul 1.8.7 from Debian bullseye")
        self.logs = logs
        self.ports = ports or {flag: free_port() for flag in (
            "-http-port", "-dns-port", "-serf-lan-port", "-serf-wan-port", "-server-port",
            "-grpc-port")}
        self.http_port = self.ports["-http-port"]
        args = [str(CONSUL_BIN), "agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
                "-log-level", "warn"]
        for flag, port in self.ports.items():
            args += [flag, str(port)]
        super().__init__(args, logs / f"consul-{self.http_port}-{time.monotonic_ns()}.log")
        self.addr = f"127.0.0.1:{self.http_port}"
        self.url = f"http://{self.addr}"
        wait_until(lambda: self.alive() and httpx.get(self.url + "/v1/status/leader",
                                                      timeout=1).text.strip('"'),
                   timeout=20, what="consul leader")

    def restart(self) -> None:
        """A new dev agent on the same ports (its state starts empty, as -dev keeps none)."""
        self.stop()
        self.__init__(self.logs, self.ports)  # type: ignore[misc]

    def register(self, service: str, service_id: str, address: str, port: int,
                 tags: list[str], check_url: str | None = None) -> None:
        body: dict[str, Any] = {"ID": service_id, "Name": service, "Address": address,
                                "Port": port, "Tags": tags}
        if check_url:
            body["Check"] = {"HTTP": check_url, "Interval": "1s", "Timeout": "1s"}
        httpx.put(self.url + "/v1/agent/service/register", json=body,
                  timeout=5).raise_for_status()

    def deregister(self, service_id: str) -> None:
        httpx.put(self.url + f"/v1/agent/service/deregister/{service_id}",
                  timeout=5).raise_for_status()

    def passing(self, service: str) -> list[Any]:
        result: list[Any] = httpx.get(self.url + f"/v1/health/service/{service}",
                                      params={"passing": "true"}, timeout=5).json()
        return result


@contextmanager
def processes() -> Iterator[list[Proc]]:
    """Stops every process appended to the list, last started first."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            proc.stop()


class Stack:
    """One database and one gateway; engine doubles are started per test as needed."""

    def __init__(self, logs: Path, db_url: str, **gateway_env: str) -> None:
        self.logs = logs
        self.world = World(db_url)
        self.procs: list[Proc] = []
        self.gateway = Gateway(logs, db_url, **gateway_env)
        self.procs.append(self.gateway)

    def double(self, name: str, model: str, **kwargs: Any) -> Double:
        double = Double(self.logs, name, model, **kwargs)
        self.procs.append(double)
        return double

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
