"""Hostile clients at both entry points (the standalone gateway and `heteroflow up`): the
whole request, headers and body, must arrive within the request timeout (else 408 and the
connection closed: slowloris); oversized headers are a 431, not "the body is too large"."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway_harness import Stack
from tests.support.pg import fresh_database
from tests.support.up_process import up_process

BOUND_S = "2"
# Far more trickle than the bound allows: a server that only times out idle gaps would
# receive all of it and answer something other than a 408.
TRICKLE = 150
GAP_S = 0.1


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw-slow"), fresh_database(pg),
              HETEROFLOW_REQUEST_TIMEOUT_S=BOUND_S)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with up_process(tmp_path_factory.mktemp("up-slow"),
                    HETEROFLOW_REQUEST_TIMEOUT_S=BOUND_S) as server:
        yield server.url


def trickle(base: str, head: bytes, slow: bytes) -> bytes:
    """Send ``head`` at once, then ``slow`` one byte at a time until the server says
    something; what it said until it closed the connection."""
    host, port = base.removeprefix("http://").split(":")
    answer = b""
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head)
        for byte in slow:
            # Stop sending once an answer is there: bytes sent to a closed socket would make
            # the kernel reset the connection and drop the answer unread.
            readable, _, _ = select.select([sock], [], [], GAP_S)
            if readable:
                break
            sock.sendall(bytes([byte]))
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass
    return answer


def slow_headers(base: str, path: str) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode()
    return trickle(base, head, b"X-Slow: " + b"a" * TRICKLE + b"\r\n\r\n")


def slow_body(base: str, path: str, key: str) -> bytes:
    body = b'{"model": "m", "messages": [], "pad": "' + b"a" * TRICKLE + b'"}'
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return trickle(base, head, body)


def test_standalone_gateway_bounds_headers_and_body(stack: Stack) -> None:
    answer = slow_headers(stack.gateway.url, "/v1/chat/completions")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    group = stack.world.add_group("slow-body")
    answer = slow_body(stack.gateway.url, "/v1/chat/completions", group.key)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer
    # Everyone else is served meanwhile and after.
    assert httpx.get(stack.gateway.url + "/gateway/health", timeout=10).status_code == 200


@pytest.mark.slow
def test_up_bounds_headers_on_gateway_and_rest_paths(up: str) -> None:
    for path in ("/v1/chat/completions", "/api/v1/task-groups"):
        answer = slow_headers(up, path)
        assert answer.startswith(b"HTTP/1.1 408"), (path, answer[:200])


def huge_headers(base: str) -> httpx.Response:
    return httpx.get(base + "/v1/models", timeout=10,
                     headers={f"X-Pad-{i}": "p" * 1000 for i in range(20)})


def test_standalone_gateway_oversized_headers_are_431(stack: Stack) -> None:
    r = huge_headers(stack.gateway.url)
    assert r.status_code == 431, r.text
    assert r.json()["error"]["code"] == "request_headers_too_large"


@pytest.mark.slow
def test_up_oversized_headers_are_431(up: str) -> None:
    assert huge_headers(up).status_code == 431
