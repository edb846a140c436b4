"""Malformed and hostile input: huge bodies, bad JSON, header injection, slow clients."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.gateway_harness import Group, Stack
from tests.support.pg import fresh_database


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw-hostile"), fresh_database(pg),
              HETEROFLOW_MAX_BODY_BYTES="65536", HETEROFLOW_REQUEST_TIMEOUT_S="1")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def group(stack: Stack) -> Group:
    double = stack.double("hostile", "hostile")
    g = stack.world.add_group("hostile")
    g.add_task(double)
    stack.gateway.wait_serving(g.key, "hostile")
    g.double = double  # type: ignore[attr-defined]
    return g


def post(stack: Stack, key: str, content: bytes, **headers: str) -> httpx.Response:
    return httpx.post(stack.gateway.url + "/v1/chat/completions", content=content, timeout=10,
                      headers={"Authorization": f"Bearer {key}",
                               "Content-Type": "application/json", **headers})


def raw_exchange(stack: Stack, data: bytes, *, wait: float = 3.0) -> bytes:
    with socket.create_connection(("127.0.0.1", stack.gateway.port), timeout=wait) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
    return b"".join(chunks)


class TestBodies:
    def test_huge_body_is_413(self, stack: Stack, group: Group) -> None:
        big = b'{"model": "hostile", "messages": [{"role": "user", "content": "' + \
            b"x" * 200_000 + b'"}]}'
        r = post(stack, group.key, big)
        assert r.status_code == 413
        assert r.json()["error"]["code"] == "request_too_large"

    def test_huge_chunked_body_is_413(self, stack: Stack, group: Group) -> None:
        def pieces() -> Iterator[bytes]:
            yield b'{"model": "hostile", "x": "'
            for _ in range(100):
                yield b"y" * 4096
            yield b'"}'

        r = httpx.post(stack.gateway.url + "/v1/chat/completions", content=pieces(),
                       headers={"Authorization": f"Bearer {group.key}"}, timeout=10)
        assert r.status_code == 413

    @pytest.mark.parametrize("body", [
        b"[" * 30_000 + b"]" * 30_000,                         # nesting
        b'{"model": "hostile", "n": ' + b"9" * 10_000 + b"}",  # an int too long to convert
        b'{"model": "hostile", "messages": [}',
        b'{"model": "\xc3\x28"}',                               # invalid UTF-8
    ])
    def test_bad_json_is_400(self, stack: Stack, group: Group, body: bytes) -> None:
        r = post(stack, group.key, body)
        assert r.status_code == 400
        assert r.json()["error"]["type"] == "invalid_request_error"

    def test_body_passes_through_untouched_but_model(self, stack: Stack, group: Group) -> None:
        body = (b'{"model": "hostile", "messages": [{"role": "user", "content": "caf\\u00e9"}],'
                b' "temperature": 0.1000000000000000055511151231257827,'
                b' "seed": 12345678901234567890,  "extra": {"nested": [1, 2.5e-8, null, true]}}')
        r = post(stack, group.key, body)
        assert r.status_code == 200
        stats = group.double.stats()  # type: ignore[attr-defined]
        assert stats["last_raw"] == body.decode()  # byte for byte: no rewrite was needed
        seen = stats["last_body"]
        assert seen["messages"][0]["content"] == "café"
        assert seen["temperature"] == 0.1
        assert seen["seed"] == 12345678901234567890
        assert seen["extra"] == {"nested": [1, 2.5e-8, None, True]}


class TestHeaders:
    def test_injection_through_model_and_request_id(self, stack: Stack, group: Group) -> None:
        r = post(stack, group.key, b'{"model": "x\\r\\nX-Evil: 1", "messages": []}')
        assert r.status_code == 404
        assert "x-evil" not in r.headers
        r = post(stack, group.key, b'{"model": "hostile", "messages": []}',
                 **{"X-Request-Id": "ok<script>"})
        assert r.status_code == 200
        assert r.headers["x-request-id"] != "ok<script>"
        assert r.headers["x-request-id"].startswith("gw-")
        r = post(stack, group.key, b'{"model": "hostile", "messages": []}',
                 **{"X-Request-Id": "trace-123"})
        assert r.headers["x-request-id"] == "trace-123"
        seen = group.double.stats()["last_headers"]  # type: ignore[attr-defined]
        forwarded = {k.lower(): v for k, v in seen.items()}
        assert forwarded["x-heteroflow-request-id"] == "trace-123"
        assert "authorization" not in forwarded  # the client's key never reaches a backend

    def test_raw_header_tricks_are_refused(self, stack: Stack, group: Group) -> None:
        # A bare LF inside a header value, and an absurdly long key.
        reply = raw_exchange(stack, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                             b"X-Request-Id: a\nInjected: 1\r\nContent-Length: 2\r\n\r\n{}",
                             wait=1)
        assert reply.startswith(b"HTTP/1.1 4")
        r = post(stack, "sk-" + "a" * 5000, b'{"model": "hostile"}')
        assert r.status_code == 401

    def test_wrong_methods_and_paths(self, stack: Stack, group: Group) -> None:
        auth = {"Authorization": f"Bearer {group.key}"}
        r = httpx.get(stack.gateway.url + "/v1/chat/completions", headers=auth)
        assert r.status_code in (404, 405)
        assert "error" in r.json()
        r = httpx.post(stack.gateway.url + "/v1/models", headers=auth)
        assert r.status_code in (404, 405)
        assert "error" in r.json()


class TestSlowClients:
    def test_slowloris_is_cut_and_others_are_served(self, stack: Stack, group: Group) -> None:
        started = time.monotonic()
        reply = raw_exchange(stack, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n",
                             wait=5)
        assert time.monotonic() - started < 4  # closed by the request timeout (1 s)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 408")
        # A body trickling in: answered 408 when the request timeout is up, then closed.
        started = time.monotonic()
        reply = raw_exchange(stack, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                             b"Authorization: Bearer " + group.key.encode() + b"\r\n"
                             b"Content-Length: 1000\r\n\r\n{\"mod", wait=5)
        assert time.monotonic() - started < 3
        assert reply.startswith(b"HTTP/1.1 408")
        assert b"connection: close" in reply
        # Without a key, the body is not even waited for.
        started = time.monotonic()
        reply = raw_exchange(stack, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Length: 100000\r\n\r\n{", wait=5)
        assert time.monotonic() - started < 1
        assert reply.startswith(b"HTTP/1.1 401")
        assert stack.gateway.chat(group.key, "hostile").status_code == 200

    def test_slow_reader_holds_the_upstream_back(self, stack: Stack, group: Group) -> None:
        double = group.double  # type: ignore[attr-defined]
        double.control(tokens=400_000, token_rate=0)
        try:
            with socket.create_connection(("127.0.0.1", stack.gateway.port)) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                body = b'{"model": "hostile", "messages": [], "stream": true}'
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Bearer " + group.key.encode() + b"\r\n"
                          b"Content-Type: application/json\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\n\r\n" + body)
                assert s.recv(1024).startswith(b"HTTP/1.1 200")
                time.sleep(2)  # the client reads nothing more
                sent = double.stats()["sent_bytes"]
                # Meanwhile everyone else is served.
                assert stack.gateway.chat(group.key, "hostile",
                                          stream=False).status_code in (200,)
                time.sleep(1)
                later = double.stats()["sent_bytes"]
            # 400k events are ~60 MB; held back, the engine wrote only what fits in the
            # gateway's bounded buffer and the sockets' buffers, and then stopped.
            assert sent < 16 * 1024 * 1024, sent
            assert later - sent < 1024 * 1024
        finally:
            double.control(tokens=4)
