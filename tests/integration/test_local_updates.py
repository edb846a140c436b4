"""Rolling updates on the one-machine default, with real processes: `heteroflow up`, two
llama.cpp engines serving SmolLM2 on the CPU, and a client that keeps sending requests
through the gateway while versions roll out, fail and roll back, get recreated and reverted,
and a stopped service starts again."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from bridge.cli.demo import MODEL_FILE
from tests.integration.test_local_e2e import Up, engines_of, serving, wait_for

pytestmark = pytest.mark.slow


class Traffic:
    """Requests one after another (two clients), from start to stop; every answer counted."""

    def __init__(self, base: str, key: str, model: str) -> None:
        self.base, self.key, self.model = base, key, model
        self.codes: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.base + "/v1", timeout=120,
                          headers={"Authorization": f"Bearer {self.key}"}) as client:
            while not self._stop.is_set():
                try:
                    r = client.post("/chat/completions", json={
                        "model": self.model, "max_tokens": 2,
                        "messages": [{"role": "user", "content": "Hi"}]})
                    self.codes[str(r.status_code)] += 1
                    if r.status_code != 200:
                        self.failures.append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as exc:
                    self.codes["error"] += 1
                    self.failures.append(repr(exc))

    @property
    def total(self) -> int:
        return sum(self.codes.values())

    @contextmanager
    def running(self) -> Iterator[Traffic]:
        for t in self._threads:
            t.start()
        try:
            yield self
        finally:
            self._stop.set()
            for t in self._threads:
                t.join(timeout=150)


def _rollout_done(up: Up, gid: str) -> dict[str, Any] | None:
    g = up.group(gid)
    done = g["rollout"] and g["rollout"].get("done")
    return g if done and g["status"] == "running" and all(
        t["status"] == "running" for t in g["tasks"]) else None


def _create(up: Up, name: str, replicas: int) -> tuple[str, str]:
    r = up.api.post("/task-groups", json={
        "name": name, "image": "ghcr.io/ggml-org/llama.cpp:server", "engine": "llamacpp",
        "model_path": str(up.home / "models" / MODEL_FILE), "gpu_required": 0})
    assert r.status_code == 201, r.text
    gid, key = r.json()["id"], r.json()["api_key"]["key"]
    wait_for(lambda: up.running(gid, 1), 120, "the engine to run")
    if replicas > 1:
        assert up.api.put(f"/task-groups/{gid}/scale",
                          json={"replicas": replicas}).status_code == 200
        wait_for(lambda: up.running(gid, replicas), 120, "the replicas to run")
    wait_for(lambda: serving(up.base, key, name), 60, "the gateway to serve")
    time.sleep(3)  # every replica probed into the gateway's pool
    return gid, key


def _engine_args(up: Up) -> list[list[str]]:
    return [p.cmdline() for p in engines_of(up.home)]


@pytest.mark.timeout(600)  # two rollouts of real engines on a busy 2-core machine
def test_rolling_update_drops_no_request_and_a_bad_version_rolls_back(up: Up) -> None:
    up.start()
    gid, key = _create(up, "roll", 2)
    with Traffic(up.base, key, "roll").running() as traffic:
        # a good version, one replica at a time, beside the old ones
        r = up.api.put(f"/task-groups/{gid}/update",
                       json={"engine_args": ["--n_ctx", "2048"]})
        assert r.status_code == 200, r.text
        assert r.json()["rolling_update_state"] == "rolling"
        g = wait_for(lambda: _rollout_done(up, gid), 300, "the rollout to complete")
        assert g["rolling_update_state"] == "completed", g
        assert g["update_progress"] == "2 of 2 replicas on version 2"
        assert [t["version"] for t in g["tasks"]] == [2, 2]
        assert sorted(t["rank"] for t in g["tasks"]) == [0, 1]
        wait_for(lambda: len(engines_of(up.home)) == 2, 60, "the old engines to end")
        assert all("2048" in cmd for cmd in _engine_args(up))
        during_good = traffic.total

        # a bad version: the engine refuses its arguments, so it never becomes healthy. A
        # crashing engine is restarted with backoff rather than failed for good, so the
        # rollout judges it at its healthy deadline, as a Nomad deployment does
        r = up.api.put(f"/task-groups/{gid}/update",
                       json={"engine_args": ["--n_ctx", "not-a-number"],
                             "healthy_deadline_seconds": 45})
        assert r.status_code == 200, r.text
        g = wait_for(lambda: _rollout_done(up, gid), 300, "the bad version to roll back")
        assert g["rolling_update_state"] == "rollback", g
        assert g["version"] == 2 and [t["version"] for t in g["tasks"]] == [2, 2]
        assert "version 3 failed" in g["rollout"]["reason"], g["rollout"]
        time.sleep(2)
    print(f"requests during the updates: {dict(traffic.codes)} "
          f"({during_good} during the good one)")
    assert traffic.failures == [], traffic.failures[:5]
    assert during_good > 10 and traffic.codes["200"] == traffic.total

    versions = up.api.get(f"/task-groups/{gid}/versions").json()
    assert [v["version"] for v in versions["items"]] == [1, 2, 3]
    assert versions["items"][1]["changes"]["engine_args"] == {"from": [],
                                                             "to": ["--n_ctx", "2048"]}
    audit = up.api.get("/audit", params={"object_id": gid}).json()["items"]
    failed = [e for e in audit if e["action"] == "task_group.update.failed"]
    assert failed and failed[0]["details"]["rollback_to"] == 2
    wait_for(lambda: len(engines_of(up.home)) == 2, 60, "the bad engine to be gone")

    # recreate: every replica stopped, then all started on the new version
    r = up.api.put(f"/task-groups/{gid}/update",
                   json={"env": {"HF_MARK": "4"}, "strategy": "recreate"})
    assert r.status_code == 200, r.text
    g = wait_for(lambda: _rollout_done(up, gid), 300, "the recreate to complete")
    assert g["rolling_update_state"] == "completed"
    assert [t["version"] for t in g["tasks"]] == [4, 4]

    # revert to version 1: its spec again, as version 5
    r = up.api.post(f"/task-groups/{gid}/versions/1/revert")
    assert r.status_code == 200, r.text
    g = wait_for(lambda: _rollout_done(up, gid), 300, "the revert to complete")
    assert (g["version"], g["engine_args"], g["env"]) == (5, [], {})
    wait_for(lambda: len(engines_of(up.home)) == 2, 60, "two engines")
    assert not any("2048" in cmd for cmd in _engine_args(up))
    wait_for(lambda: serving(up.base, key, "roll"), 60, "serving after the revert")

    # an update abandoned while it rolls: back to version 5, with every replica on it
    r = up.api.put(f"/task-groups/{gid}/update", json={"env": {"HF_MARK": "6"}})
    assert r.status_code == 200, r.text
    assert up.api.post(f"/task-groups/{gid}/rollout/fail").status_code == 200
    g = wait_for(lambda: _rollout_done(up, gid), 300, "the abandoned rollout to roll back")
    assert g["rolling_update_state"] == "rollback" and g["version"] == 5
    assert "abandoned on request" in g["rollout"]["reason"], g["rollout"]
    assert [t["version"] for t in g["tasks"]] == [5, 5]
    wait_for(lambda: len(engines_of(up.home)) == 2, 60, "two engines")

    # a canary of version 7 beside both replicas of version 5 gets its share of traffic,
    # and the rest of the rollout waits for its promotion
    r = up.api.put(f"/task-groups/{gid}/update", json={
        "env": {"HF_MARK": "7"}, "canary": 1, "canary_percent": 30})
    assert r.status_code == 200, r.text

    def canary_running() -> str | None:
        g = up.group(gid)
        new = [t for t in g["tasks"] if t["version"] == 7 and t["status"] == "running"]
        return new[0]["id"] if len(g["tasks"]) == 3 and new else None

    canary = wait_for(canary_running, 120, "the canary to run")
    time.sleep(4)  # probed into the gateway's pool
    n, seen = 150, Counter()
    with httpx.Client(base_url=up.base + "/v1", timeout=120,
                      headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(n):
            resp = client.post("/chat/completions", json={
                "model": "roll", "max_tokens": 1, "messages": [{"role": "user",
                                                                "content": "Hi"}]})
            assert resp.status_code == 200, resp.text
            seen[resp.headers["x-heteroflow-backend"] == canary] += 1
    share = seen[True] / n
    print(f"canary share observed: {share:.3f} of {n} (asked 0.30)")
    assert abs(seen[True] - 0.3 * n) < 5 * (n * 0.3 * 0.7) ** 0.5, seen  # 5 sd
    g = up.group(gid)
    assert g["rolling_update_state"] == "rolling" and len(g["tasks"]) == 3
    assert up.api.post(f"/task-groups/{gid}/rollout/promote").status_code == 200
    g = wait_for(lambda: _rollout_done(up, gid), 300, "the promoted rollout to complete")
    assert g["rolling_update_state"] == "completed"
    assert [t["version"] for t in g["tasks"]] == [7, 7]
    wait_for(lambda: len(engines_of(up.home)) == 2, 60, "two engines")

    # stop both replicas, then start the service again
    for t in g["tasks"]:
        assert up.api.post(f"/tasks/{t['id']}/stop").status_code == 200
    wait_for(lambda: up.group(gid)["status"] == "completed", 60, "the service to stop")
    r = up.api.post(f"/task-groups/{gid}/start")
    assert r.status_code == 200, r.text
    wait_for(lambda: up.running(gid, 2), 120, "the service to run again")
    wait_for(lambda: serving(up.base, key, "roll"), 60, "serving after the start")
    up.stop()
    assert not engines_of(up.home)
