"""Autoscaling for real on one machine: `heteroflow up`, a llama.cpp engine on the CPU, the
gateway's in-flight counters, the bridge's policy loop and local placement.

A bounded load of concurrent streaming requests (concurrent_requests target 1, min 1,
max 2) scales the service to 2, both replicas then serve; after the load it returns to 1
once the down delay passes; no request fails across both moves."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bridge.cli.demo import MODEL_FILE
from tests.integration.test_local_e2e import Up, serving, wait_for
from tests.integration.test_local_e2e import up as up  # the fixture, re-exported

pytestmark = pytest.mark.slow


class Load:
    """``clients`` threads, each sending streaming requests one after another until stopped."""

    def __init__(self, base: str, key: str, model: str, clients: int) -> None:
        self.base, self.key, self.model, self.clients = base, key, model, clients
        self.stop = threading.Event()
        self.failures: list[str] = []
        self.backends: set[str] = set()
        self.done = 0
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(clients)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(timeout=180)

    def _client(self) -> None:
        with httpx.Client(base_url=self.base + "/v1", timeout=120,
                          headers={"Authorization": f"Bearer {self.key}"}) as http:
            while not self.stop.is_set():
                try:
                    with http.stream("POST", "/chat/completions", json={
                            "model": self.model, "max_tokens": 48, "stream": True,
                            "messages": [{"role": "user", "content": "Tell a story."}]}) as r:
                        body = b"".join(r.iter_bytes())
                        if r.status_code != 200 or b"[DONE]" not in body or b'"error"' in body:
                            self.failures.append(f"{r.status_code}: {body[-300:]!r}")
                        self.backends.add(r.headers.get("x-heteroflow-backend", "?"))
                        self.done += 1
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))


def scale_reasons(up: Up, gid: str) -> list[str]:
    """The sentences of the scale moves in the audit trail, newest first."""
    audit = up.api.get("/audit", params={"object_id": gid, "action": "task_group.scale"})
    assert audit.status_code == 200, audit.text
    return [e["details"].get("reason", "") for e in audit.json()["items"]]


@pytest.fixture
def fast_policies() -> Iterator[None]:
    """Short rounds and averaging so the test waits seconds, not minutes."""
    old = {k: os.environ.get(k) for k in ("HETEROFLOW_AUTOSCALE_INTERVAL_SECONDS",
                                          "HETEROFLOW_AUTOSCALE_WINDOW_SECONDS")}
    os.environ["HETEROFLOW_AUTOSCALE_INTERVAL_SECONDS"] = "1"
    os.environ["HETEROFLOW_AUTOSCALE_WINDOW_SECONDS"] = "3"
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_load_scales_a_llamacpp_service_to_two_and_back(up: Up, fast_policies: None) -> None:
    up.start()
    model = str(Path(up.home) / "models" / MODEL_FILE)
    r = up.api.post("/task-groups", json={
        "name": "auto", "image": "ghcr.io/ggml-org/llama.cpp:server", "engine": "llamacpp",
        "model_path": model, "gpu_required": 0})
    assert r.status_code == 201, r.text
    gid, key = r.json()["id"], r.json()["api_key"]["key"]
    wait_for(lambda: up.running(gid, 1), 120, "the engine to run")
    wait_for(lambda: serving(up.base, key, "auto"), 60, "the gateway to serve")
    r = up.api.put(f"/task-groups/{gid}/scale-policy", json={
        "auto_scale": True, "min_replicas": 1, "max_replicas": 2,
        "metric": "concurrent_requests", "target_value": 1, "cooldown_seconds": 30,
        "up_delay_seconds": 2, "down_delay_seconds": 5})
    assert r.status_code == 200, r.text
    assert r.json()["auto_scale"] is True and r.json()["max_replicas"] == 2

    load = Load(up.base, key, "auto", clients=4)
    started = time.monotonic()
    load.start()
    try:
        g = wait_for(lambda: up.running(gid, 2), 240, "a second replica")
        scaled_s = time.monotonic() - started
        # both serve: the gateway sends work to each once it has probed the new one
        wait_for(lambda: len(load.backends - {"?"}) >= 2, 120, "both replicas to serve")
        serving_s = time.monotonic() - started
        ups = [r for r in scale_reasons(up, gid) if r.startswith("scaled 1 -> 2")]
        assert ups and "requests in flight per replica > target 1" in ups[0], ups
        assert up.group(gid)["policy"]["decision"]  # the status always says where it stands
    finally:
        # one client keeps streaming through the scale-down: 1 in flight is 0.5 per
        # replica on two, and would be 1 (the target) on one, so the service goes down to 1
        # while this client's requests go on
        trickle = Load(up.base, key, "auto", clients=1)
        trickle.start()
        load.finish()
    assert not load.failures, load.failures[:3]
    assert load.done > 0
    print(f"\nload start -> 2 replicas running: {scaled_s:.1f} s, both serving: "
          f"{serving_s:.1f} s")

    stopped = time.monotonic()
    try:
        g = wait_for(lambda: up.running(gid, 1), 240, "the return to one replica")
        done_before = trickle.done
        wait_for(lambda: trickle.done >= done_before + 3, 120, "requests after the move")
    finally:
        trickle.finish()
    assert not trickle.failures, trickle.failures[:3]
    print(f"load end -> back to 1 replica: {time.monotonic() - stopped:.1f} s "
          "(cooldown 30 s from the scale-up, down delay 5 s)")
    downs = [r for r in scale_reasons(up, gid) if r.startswith("scaled 2 -> 1")]
    assert downs and "requests in flight per replica < target 1" in downs[0], downs
    wait_for(lambda: "steady" in up.group(gid)["policy"]["decision"], 60,
             "the status to say it is steady at the minimum")
    # and the one left still answers
    assert serving(up.base, key, "auto")
    assert g["tasks"][0]["rank"] == 0
    up.stop()
