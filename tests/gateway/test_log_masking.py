"""Credentials a client puts in a URL or a header never reach a log line, on either entry
point: the standalone gateway (access log on) and `heteroflow up` (bridge and gateway)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway_harness import Stack, wait_until
from tests.support.pg import fresh_database
from tests.support.up_process import up_process

SECRET = "sk-leakcheck0123456789"


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw-mask"), fresh_database(pg),
              HETEROFLOW_ACCESS_LOG="true")
    try:
        yield s
    finally:
        s.close()


def send_secrets(base: str) -> None:
    for path in (f"/v1/models?api_key={SECRET}", f"/v1/chat/completions?token={SECRET}&x=1",
                 f"/api/v1/task-groups?access_token={SECRET}"):
        httpx.get(base + path, timeout=10, headers={"Authorization": f"Bearer {SECRET}",
                                                     "X-Api-Key": SECRET})
    httpx.post(base + "/v1/chat/completions", timeout=10, content=b"{bad json",
               headers={"Authorization": f"Bearer {SECRET}"})


def test_standalone_gateway_masks_urls_and_headers(stack: Stack) -> None:
    send_secrets(stack.gateway.url)
    wait_until(lambda: "api_key=***" in stack.gateway.output(), what="the access log")
    time.sleep(0.3)  # the other lines of the same burst
    out = stack.gateway.output()
    assert SECRET not in out
    assert "leakcheck" not in out
    assert "token=***" in out


@pytest.mark.slow
def test_up_masks_urls_and_headers(tmp_path_factory: pytest.TempPathFactory) -> None:
    with up_process(tmp_path_factory.mktemp("up-mask")) as up:
        send_secrets(up.url)
        wait_until(lambda: "access_token=***" in up.output(), what="the access log")
        time.sleep(0.3)
        out = up.output()
    assert SECRET not in out
    assert "leakcheck" not in out
    assert "api_key=***" in out
