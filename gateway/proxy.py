"""Forwarding one OpenAI request: plan, try backends in order, relay the first good answer.

Retry rule: an attempt may be retried on the next backend of the plan only while nothing
has reached the client: a connect error, a timeout, a 5xx or a 429 before the response
starts. A streaming response is committed only after its first chunk arrived (so a backend
that dies before its first token still gets a retry); once committed, a failure ends the
stream with an error event and is never retried. At most ``max_attempts`` attempts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sanic import Request
from sanic.response import HTTPResponse

from gateway.domain import Route, Tier
from gateway.errors import NoHealthyBackend, UpstreamFailed, UpstreamTimeout
from gateway.pool import Backend
from gateway.relay import Answer, Retry, relay_plain, relay_stream
from gateway.routing.select import plan
from gateway.runtime import GatewayRuntime
from gateway.upstream import ConnectFailed, UpstreamError
from gateway.upstream import UpstreamTimeout as UpstreamTimedOut

Attempts = Iterator[tuple[Route, Backend]]


@dataclass(slots=True)
class Call:
    """One client request, as far as forwarding needs it."""

    key_id: str
    model: str
    label: str  # the model as a metrics label (bounded)
    parsed: dict[str, Any]
    raw: bytes
    stream: bool
    suffix: str  # "/chat/completions", "/completions", "/embeddings"
    request_id: str
    started: float  # perf_counter at handler entry
    panic: bool = False  # served by ejected backends, as nothing of the model was usable


async def forward(rt: GatewayRuntime, request: Request, call: Call,
                  tiers: tuple[Tier, ...]) -> HTTPResponse | None:
    snapshot = rt.snapshot
    asleep = snapshot.asleep.get(call.model)
    waking = False
    if asleep:
        for group in asleep:
            waking = rt.wake.ensure_waking(group) or waking
    now = time.monotonic()
    attempts = plan(tiers, rt.pool, rt.balancers, now)
    attempt = next(attempts, None)
    if attempt is None and not waking:
        # Envoy's panic threshold: every backend ejected is more likely an overload or a
        # flapping check than an outage, and trying them beats refusing every client.
        attempts = plan(tiers, rt.pool, rt.balancers, now, panic=True)
        attempt = next(attempts, None)
        if attempt is not None:
            call.panic = True
            rt.metrics.panic_routed.inc((call.label,))
    if attempt is None:
        if not waking:
            raise NoHealthyBackend(f"no healthy backend serves model {call.model!r} right now",
                                   retry_after=rt.settings.cooldown_s or 1)
        attempts = await _hold_until_awake(rt, call)
        attempt = next(attempts, None)
    failures: list[str] = []
    last: Retry | None = None
    last_route: Route | None = None
    tries = 0
    while attempt is not None and tries < rt.settings.max_attempts:
        route, backend = attempt
        tries += 1
        if tries > 1:
            rt.metrics.retries.inc((call.label,))
        try:
            answer = await _attempt(rt, request, call, route, backend)
        except Retry as retry:
            last, last_route = retry, route
            failures.append(retry.kind)
            attempt = next(attempts, None)
            continue
        _account(rt, call, route, answer)
        return answer.response
    if last is not None and last.response is not None and last_route is not None:
        # The last upstream's own 5xx/429 answer, passed through as it came.
        status = last.response.status
        rt.metrics.requests.inc((call.label, str(status)))
        rt.usage.record(call.key_id, last_route.id, call.model, prompt=0, completion=0,
                        error=True)
        return last.response
    return _give_up(rt, call, last, failures)


async def _attempt(rt: GatewayRuntime, request: Request, call: Call, route: Route,
                   backend: Backend) -> Answer:
    data = request_bytes(call, route, backend)
    backend.inflight += 1
    try:
        if call.stream:
            return await relay_stream(rt, request, call, route, backend, data)
        return await relay_plain(rt, call, route, backend, data)
    except UpstreamError as exc:
        rt.pool.report_failure(backend, refused=isinstance(exc, ConnectFailed))
        rt.metrics.upstream_errors.inc((backend.pool_key, backend.id, exc.kind))
        raise Retry(exc.kind, error=exc) from exc
    finally:
        backend.inflight -= 1


def request_bytes(call: Call, route: Route, backend: Backend) -> bytes:
    body = call.raw
    if route.served_model != call.model:
        rewritten = dict(call.parsed)
        rewritten["model"] = route.served_model
        body = _dumps(rewritten)
    external = route.external
    if external is None:
        path = b"/v1" + call.suffix.encode()
        auth = b""
    else:
        path = external.base_path.encode() + call.suffix.encode()
        auth = (b"Authorization: Bearer " + external.api_key.encode() + b"\r\n"
                if external.api_key else b"")
    return b"".join((
        b"POST ", path, b" HTTP/1.1\r\nHost: ", backend.origin.host_header,
        b"\r\nContent-Type: application/json\r\nContent-Length: ", str(len(body)).encode(),
        # Not X-Request-Id: llama-cpp-python's server answers 400 to any value but a UUID.
        b"\r\nX-Heteroflow-Request-Id: ", call.request_id.encode(), b"\r\n", auth, b"\r\n",
        body))


async def _hold_until_awake(rt: GatewayRuntime, call: Call) -> Attempts:
    """Wait (bounded) until the model has a usable backend; the plan then, or a 503."""
    settings = rt.settings
    deadline = time.monotonic() + settings.wake_timeout_s
    with rt.wake.holding(call.model):
        while True:
            tiers = rt.snapshot.tiers.get(call.model, ())
            attempts = plan(tiers, rt.pool, rt.balancers, time.monotonic())
            first = next(attempts, None)
            if first is not None:
                return _chain(first, attempts)
            asleep = rt.snapshot.asleep.get(call.model, ())
            for group in asleep:
                rt.wake.ensure_waking(group)
            failures = [rt.wake.failure(g.id) for g in asleep]
            if asleep and all(failures):
                raise NoHealthyBackend(
                    f"model {call.model!r} is asleep and waking it failed: {failures[0]}",
                    code="wake_failed", retry_after=settings.wake_retry_s)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoHealthyBackend(
                    f"model {call.model!r} is waking up but had no healthy backend after "
                    f"{settings.wake_timeout_s:g} s; retry shortly",
                    code="model_waking", retry_after=settings.wake_retry_s)
            try:
                async with asyncio.timeout(min(remaining, 0.5)):
                    await rt.pool.wait_changed()
            except TimeoutError:
                pass


def _chain(first: tuple[Route, Backend], rest: Attempts) -> Attempts:
    yield first
    yield from rest


def _account(rt: GatewayRuntime, call: Call, route: Route, answer: Answer) -> None:
    tokens = answer.tokens or (0, 0)
    rt.usage.record(call.key_id, route.id, call.model, prompt=tokens[0], completion=tokens[1],
                    error=answer.status >= 400 or answer.failed)


def _give_up(rt: GatewayRuntime, call: Call, last: Retry | None,
             failures: list[str]) -> HTTPResponse:
    if last is None:
        raise NoHealthyBackend(f"no healthy backend serves model {call.model!r} right now",
                               retry_after=rt.settings.cooldown_s or 1)
    summary = ", ".join(failures)
    if isinstance(last.error, UpstreamTimedOut):
        raise UpstreamTimeout(f"the backends of model {call.model!r} did not answer in time "
                              f"({len(failures)} attempts: {summary})")
    raise UpstreamFailed(f"the backends of model {call.model!r} failed before answering "
                         f"({len(failures)} attempts: {summary})")


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
