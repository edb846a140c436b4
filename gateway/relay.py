"""Relaying one upstream answer to the client: whole (non-streaming) or as it arrives (SSE).

Both relays raise ``Retry`` while the client has seen nothing (the caller may try another
backend), and return an ``Answer`` once the client has its response. Streaming commits
only after the first chunk arrived; after that each chunk is written as soon as it is read
(whatever arrived together goes out in one write, nothing waits for more), and a failure
ends the stream with an OpenAI-style error event.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sanic import Request
from sanic.helpers import has_message_body
from sanic.response import HTTPResponse

from gateway.domain import Route
from gateway.error_bodies import safe_error_body
from gateway.pool import Backend
from gateway.stream_usage import DONE, count_tokens, stream_id, usage_event
from gateway.upstream import Response, UpstreamError
from gateway.usage import TAIL_BYTES, usage_in

if TYPE_CHECKING:
    from gateway.proxy import Call
    from gateway.runtime import GatewayRuntime

_STATUS_TEXT = {code: str(code) for code in range(100, 600)}
_CONTROL = {c: None for c in range(32)} | {127: None}
_content_types: dict[bytes, str] = {}  # upstream Content-Type values, decoded and cleaned


class RelayedResponse(HTTPResponse):
    """A response whose header values are clean where they enter the gateway: route versions
    and backend ids when the snapshot and the pool are built, request ids by pattern, content
    types below. Writing it therefore skips the framework's per-value sanitizing, which
    profiling showed at about 5% of a proxied request."""

    __slots__ = ()

    @property
    def processed_headers(self) -> Any:
        if has_message_body(self.status):  # type: ignore[no-untyped-call]
            self.headers.setdefault("content-type", self.content_type)
        return ((name.encode("ascii"), str(value).encode("latin-1"))
                for name, value in self.headers.items())


@dataclass(slots=True)
class Answer:
    response: HTTPResponse | None  # None: already streamed to the client
    status: int
    tokens: tuple[int, int] | None
    failed: bool = False


class Retry(Exception):
    """This attempt failed before the client saw anything; ``kind`` says how."""

    def __init__(self, kind: str, *, error: UpstreamError | None = None,
                 response: HTTPResponse | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.error = error
        self.response = response  # the upstream's own error answer, if it sent one


async def relay_plain(rt: GatewayRuntime, call: Call, route: Route, backend: Backend,
                      data: bytes) -> Answer:
    sent = perf_counter()
    resp = await rt.client.request(backend.origin, data, stream=False,
                                   wait_s=first_byte_s(rt, route))
    upstream_s = perf_counter() - sent
    body = resp.body()
    response = _whole(rt, call, route, backend, resp, body, upstream_s)
    return Answer(response, resp.status, usage_in(body) if resp.status < 300 else None)


async def relay_stream(rt: GatewayRuntime, request: Request, call: Call, route: Route,
                       backend: Backend, data: bytes) -> Answer:
    wait_s = rt.settings.upstream_timeout_s
    sent = perf_counter()
    first_s = first_byte_s(rt, route)
    resp = await rt.client.request(backend.origin, data, stream=True, wait_s=first_s)
    try:
        if resp.status != 200:
            # An error instead of a stream: small JSON, relayed whole (and maybe retried).
            parts = []
            while (part := await resp.next_chunk(wait_s)) is not None:
                parts.append(part)
            body = b"".join(parts)
            response = _whole(rt, call, route, backend, resp, body, perf_counter() - sent)
            return Answer(response, resp.status, None)
        # The first chunk within the same bound: until then the client saw nothing.
        first = await resp.next_chunk(max(0.001, first_s - (perf_counter() - sent)))
        upstream_s = perf_counter() - sent
        rt.pool.report_success(backend)
        content_type = resp.header(b"content-type")
        headers = _headers(call, route, backend, upstream_s)
        _observe(rt, call, 200, upstream_s)
        stream = await request.respond(
            status=200, headers=headers,
            content_type=_content_type(content_type, "text/event-stream"))
        assert stream is not None
        tail: deque[bytes] = deque()
        kept = 0
        chunk = first
        failed = False
        relayed = 0  # tokens, counted as stream_usage says, for engines that send no usage
        wants_usage = _wants_usage(call)
        while chunk is not None:
            relayed += count_tokens(chunk)
            if wants_usage and DONE in chunk:
                chunk = await _usage_before_done(stream, call, tail, chunk, relayed)
            await stream.send(chunk)
            tail.append(chunk)
            kept += len(chunk)
            while kept - len(tail[0]) >= TAIL_BYTES:
                kept -= len(tail.popleft())
            try:
                chunk = await resp.next_chunk(wait_s)
            except UpstreamError as exc:
                failed = True
                rt.metrics.stream_errors.inc((call.label,))
                rt.metrics.upstream_errors.inc((backend.pool_key, backend.id, exc.kind))
                rt.pool.report_failure(backend)
                await stream.send(_error_event(exc))
                break
        await stream.eof()
        found = usage_in(b"".join(tail))
        return Answer(None, 200, found if found is not None else (0, relayed), failed=failed)
    finally:
        resp.abort()  # a no-op when complete; closes the connection otherwise


def _wants_usage(call: Call) -> bool:
    options = call.parsed.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _usage_before_done(stream: Any, call: Call, tail: deque[bytes], chunk: bytes,
                             relayed: int) -> bytes:
    """The client asked for usage: if the engine sent none, ours goes just before [DONE].
    Returns what of ``chunk`` is left to send."""
    at = chunk.find(DONE)
    before = chunk[:at]
    seen = b"".join(tail) + before
    if usage_in(seen) is not None:
        return chunk
    if before:
        await stream.send(before)
        tail.append(before)
    ident = stream_id(seen) or call.request_id
    await stream.send(usage_event(ident, call.model, relayed,
                                  chat=call.suffix == "/chat/completions"))
    return chunk[at:]


def first_byte_s(rt: GatewayRuntime, route: Route) -> float:
    """The bound on an attempt's time to its first byte: the route's, else the gateway's."""
    settings = rt.settings
    bound = route.first_byte_s or settings.first_byte_timeout_s
    return min(bound, settings.upstream_timeout_s)


def _whole(rt: GatewayRuntime, call: Call, route: Route, backend: Backend, resp: Response,
           body: bytes, upstream_s: float) -> HTTPResponse:
    status = resp.status
    headers = _headers(call, route, backend, upstream_s)
    content_type = resp.header(b"content-type")
    if status >= 400:
        # Engines put tracebacks and their file paths in errors; the client gets neither.
        body = safe_error_body(body, status)
        content_type = None
    if status == 429 or status >= 500:
        retry_after = resp.header(b"retry-after")
        if retry_after is not None:
            headers["retry-after"] = retry_after.decode("latin-1").translate(_CONTROL)[:64]
    response = RelayedResponse(body, status=status, headers=headers,
                               content_type=_content_type(content_type, "application/json"))
    if status == 429 or status >= 500:
        rt.pool.report_failure(backend, at_once=status == 429)
        kind = "http_" + _STATUS_TEXT.get(status, "5xx")
        rt.metrics.upstream_errors.inc((backend.pool_key, backend.id, kind))
        raise Retry(kind, response=response)
    rt.pool.report_success(backend)
    _observe(rt, call, status, upstream_s)
    return response


def _content_type(raw: bytes | None, default: str) -> str:
    if raw is None:
        return default
    known = _content_types.get(raw)
    if known is None:
        known = raw.decode("latin-1").translate(_CONTROL)[:200] or default
        if len(_content_types) < 64:
            _content_types[raw] = known
    return known


def _headers(call: Call, route: Route, backend: Backend, upstream_s: float) -> dict[str, str]:
    added = perf_counter() - call.started - upstream_s
    headers = {
        "x-heteroflow-route-version": route.version,
        "x-heteroflow-backend": backend.id,
        "x-heteroflow-overhead-ms": f"{max(0.0, added) * 1000:.3f}",
        "x-request-id": call.request_id,
    }
    if call.panic:
        headers["x-heteroflow-panic"] = "1"
    return headers


def _observe(rt: GatewayRuntime, call: Call, status: int, upstream_s: float) -> None:
    elapsed = perf_counter() - call.started
    metrics = rt.metrics
    metrics.requests.inc((call.label, _STATUS_TEXT.get(status, "other")))
    metrics.latency.observe((call.label,), elapsed)
    metrics.overhead.observe((call.label,), max(0.0, elapsed - upstream_s))


def _error_event(exc: UpstreamError) -> bytes:
    error = {"error": {"message": f"the upstream failed mid-stream ({exc.kind}); the response "
                                  "is incomplete", "type": "server_error", "param": None,
                       "code": "upstream_stream_error"}}
    return b"data: " + json.dumps(error).encode() + b"\n\n"
