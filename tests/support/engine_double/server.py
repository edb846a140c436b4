"""The engine double: vLLM's OpenAI server surface on aiohttp, with knobs for failure.

Surface (as vLLM serves it, started with ``--enable-sleep-mode`` and
``VLLM_SERVER_DEV_MODE=1``):

    GET  /health            200, or 503 when told to be unhealthy
    GET  /v1/models         the served model name
    POST /v1/chat/completions, /v1/completions   JSON or SSE (``stream``), with ``usage``
                            (and a final usage chunk when ``stream_options.include_usage``)
    POST /v1/embeddings
    GET  /metrics           vllm:num_requests_running, vllm:num_requests_waiting
    POST /sleep?level=1     POST /wake_up     GET /is_sleeping

Test-only control (never part of vLLM):

    POST /_control          JSON: mode (ok | error500 | status429 | close | hang | die_mid_stream),
                            latency_s (before the first token), token_rate (tokens/s, 0 = at
                            once), tokens (per answer), die_after (tokens before dying),
                            healthy (bool), health_delay_s (a slow /health), wake_delay_s,
                            error_text (the message of error500, as an engine's traceback),
                            stream_usage (false: ignore include_usage, as llama.cpp does)
    GET  /_stats            requests seen, the last body and headers, in flight, sleeping
    POST /_reset            counters back to zero

Every answer's text names the double (``--name``) so tests can tell who served.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from aiohttp import web

MODES = ("ok", "error500", "status429", "close", "hang", "die_mid_stream")


class Engine:
    def __init__(self, name: str, model: str, api_key: str | None) -> None:
        self.name = name
        self.model = model
        self.api_key = api_key
        self.mode = "ok"
        self.latency_s = 0.0
        self.token_rate = 0.0
        self.tokens = 4
        self.die_after = 2
        self.healthy = True
        self.health_delay_s = 0.0
        self.error_text = ""
        self.stream_usage = True
        self.sleeping = False
        self.wake_delay_s = 0.0
        self.requests = 0
        self.running = 0
        self.sent_bytes = 0  # of stream bodies: shows whether a reader holds the writer back
        self.last_body: Any = None
        self.last_raw = ""
        self.last_headers: dict[str, str] = {}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes([
            web.get("/health", self.health),
            web.get("/v1/models", self.models),
            web.post("/v1/chat/completions", self.chat),
            web.post("/v1/completions", self.completions),
            web.post("/v1/embeddings", self.embeddings),
            web.get("/metrics", self.metrics),
            web.post("/sleep", self.sleep),
            web.post("/wake_up", self.wake_up),
            web.get("/is_sleeping", self.is_sleeping),
            web.post("/_control", self.control),
            web.get("/_stats", self.stats),
            web.post("/_reset", self.reset),
        ])
        return app

    # -- vLLM surface ----------------------------------------------------------------------

    async def health(self, _: web.Request) -> web.Response:
        if self.health_delay_s:
            await asyncio.sleep(float(self.health_delay_s))
        return web.Response(status=200 if self.healthy else 503)

    async def models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.model, "object": "model", "created": 0, "owned_by": "vllm"}]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        body = self.last_body
        inputs = body.get("input", "")
        count = len(inputs) if isinstance(inputs, list) else 1
        return web.json_response({
            "object": "list", "model": body.get("model"),
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                     for i in range(count)],
            "usage": {"prompt_tokens": 3 * count, "total_tokens": 3 * count}})

    async def metrics(self, _: web.Request) -> web.Response:
        text = (
            "# HELP vllm:num_requests_running Number of requests currently running.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{model_name="{self.model}"}} {float(self.running)}\n'
            "# HELP vllm:num_requests_waiting Number of requests waiting.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="{self.model}"}} 0.0\n')
        return web.Response(text=text, content_type="text/plain")

    async def sleep(self, _: web.Request) -> web.Response:
        self.sleeping = True
        return web.Response(status=200)

    async def wake_up(self, _: web.Request) -> web.Response:
        if self.wake_delay_s:
            await asyncio.sleep(self.wake_delay_s)
        self.sleeping = False
        return web.Response(status=200)

    async def is_sleeping(self, _: web.Request) -> web.Response:
        return web.json_response({"is_sleeping": self.sleeping})

    # -- control ---------------------------------------------------------------------------

    async def control(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "mode" in body and body["mode"] not in MODES:
            return web.json_response({"error": f"mode must be one of {MODES}"}, status=400)
        for field in ("mode", "latency_s", "token_rate", "tokens", "die_after", "healthy",
                      "health_delay_s", "wake_delay_s", "sleeping", "error_text",
                      "stream_usage"):
            if field in body:
                setattr(self, field, body[field])
        return web.json_response({"ok": True})

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response({"name": self.name, "requests": self.requests,
                                  "running": self.running, "sleeping": self.sleeping,
                                  "sent_bytes": self.sent_bytes,
                                  "last_body": self.last_body, "last_raw": self.last_raw,
                                  "last_headers": self.last_headers})

    async def reset(self, _: web.Request) -> web.Response:
        self.requests = 0
        self.last_body = None
        self.last_headers = {}
        return web.json_response({"ok": True})

    # -- generation ------------------------------------------------------------------------

    async def _admit(self, request: web.Request) -> web.StreamResponse | None:
        self.requests += 1
        self.last_headers = dict(request.headers)
        raw = await request.read()
        self.last_raw = raw.decode("utf-8", "replace")
        try:
            self.last_body = await request.json()
        except ValueError:
            return _error(400, "body is not JSON")
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid api key")
        if self.mode == "close":
            assert request.transport is not None
            request.transport.abort()  # connection reset before any byte of a response
            return web.Response()
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "error500":
            return _error(500, self.error_text or f"{self.name} is broken")
        if self.mode == "status429":
            return _error(429, f"{self.name} is overloaded")
        if self.sleeping:
            return _error(503, f"{self.name} is sleeping")
        if self.last_body.get("model") != self.model:
            return _error(404, f"The model `{self.last_body.get('model')}` does not exist.")
        return None

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        refusal = await self._admit(request)
        if refusal is not None:
            return refusal
        body = self.last_body
        self.running += 1
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            pieces = [f"{self.name}-{i} " for i in range(int(self.tokens))]
            usage = {"prompt_tokens": 7, "completion_tokens": len(pieces),
                     "total_tokens": 7 + len(pieces)}
            if body.get("stream"):
                return await self._stream(request, body, pieces, usage, chat=chat)
            await self._pace(len(pieces))
            text = "".join(pieces)
            choice: dict[str, Any] = (
                {"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": text}} if chat
                else {"index": 0, "finish_reason": "stop", "text": text})
            return web.json_response({
                "id": f"cmpl-{self.name}-{self.requests}",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()), "model": self.model, "choices": [choice],
                "usage": usage})
        finally:
            self.running -= 1

    async def _stream(self, request: web.Request, body: dict[str, Any], pieces: list[str],
                      usage: dict[str, int], *, chat: bool) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        include_usage = self.stream_usage and bool(
            (body.get("stream_options") or {}).get("include_usage"))
        ident = f"cmpl-{self.name}-{self.requests}"
        for i, piece in enumerate(pieces):
            if self.mode == "die_mid_stream" and i >= int(self.die_after):
                assert request.transport is not None
                request.transport.abort()
                return response
            await self._pace(1)
            delta: dict[str, Any] = ({"content": piece} if i else
                                     {"role": "assistant", "content": piece})
            choice = ({"index": 0, "delta": delta, "finish_reason": None} if chat
                      else {"index": 0, "text": piece, "finish_reason": None})
            event = _event(ident, self.model, [choice], chat,
                           usage=None if include_usage else ...)
            await response.write(event)
            self.sent_bytes += len(event)
        last = ({"index": 0, "delta": {}, "finish_reason": "stop"} if chat
                else {"index": 0, "text": "", "finish_reason": "stop"})
        await response.write(_event(ident, self.model, [last], chat,
                                    usage=None if include_usage else ...))
        if include_usage:
            await response.write(_event(ident, self.model, [], chat, usage=usage))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _pace(self, tokens: int) -> None:
        if self.token_rate:
            await asyncio.sleep(tokens / float(self.token_rate))


def _event(ident: str, model: str, choices: list[dict[str, Any]], chat: bool,
           usage: Any) -> bytes:
    event: dict[str, Any] = {"id": ident,
                             "object": "chat.completion.chunk" if chat else "text_completion",
                             "created": int(time.time()), "model": model, "choices": choices}
    if usage is not ...:
        event["usage"] = usage  # vLLM sends "usage": null on every chunk when asked for usage
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"object": "error", "message": message, "type": "BadRequestError",
                              "param": None, "code": status}, status=status)


def main() -> None:
    parser = argparse.ArgumentParser(description="vLLM-like engine double")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="double")
    parser.add_argument("--model", default="double-model")
    parser.add_argument("--api-key", default=os.environ.get("ENGINE_DOUBLE_API_KEY"))
    parser.add_argument("--sleeping", action="store_true")
    parser.add_argument("--token-rate", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    engine = Engine(args.name, args.model, args.api_key)
    engine.sleeping = args.sleeping
    engine.token_rate = args.token_rate
    engine.latency_s = args.latency
    web.run_app(engine.app(), host=args.host, port=args.port, print=None,
                access_log=None, handle_signals=True)


if __name__ == "__main__":
    main()
