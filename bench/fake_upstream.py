"""A fast fake OpenAI upstream for the benchmark: canned answers, no model, no framework.

It must be far faster than anything proxying to it, so it is a bare asyncio protocol on
uvloop with precomputed responses: a chat completion for ``"stream": false`` bodies and an
SSE stream of ``--chunks`` chunks (sent as they are produced, each its own write) otherwise.
A stream whose body says ``"user":"paced"`` is an engine's instead: one token every
``--token-ms`` milliseconds after a first-token delay of the same length (bench/streams.py).

    python -m bench.fake_upstream --port 9100 [--chunks 64] [--token-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import cast

import httptools
import uvloop


def completion_body(model: str) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello from the bench."}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14},
    }, separators=(",", ":")).encode()


def sse_chunks(model: str, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        event = {"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                 "created": 1700000000, "model": model,
                 "choices": [{"index": 0, "delta": {"content": f"t{i} "},
                              "finish_reason": None}]}
        out.append(b"data: " + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
    out.append(b"data: [DONE]\n\n")
    return out


def chunked(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


class Canned:
    def __init__(self, chunks: int, model: str = "bench") -> None:
        body = completion_body(model)
        self.plain = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.stream_head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n")
        self.stream_pieces = [chunked(c) for c in sse_chunks(model, chunks)] + [b"0\r\n\r\n"]
        models = json.dumps({"object": "list", "data": [{"id": model, "object": "model"}]})
        self.models = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(models), models.encode()))


class Server(asyncio.Protocol):
    def __init__(self, canned: Canned, token_s: float) -> None:
        self.canned = canned
        self.token_s = token_s
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body: list[bytes] = []
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        self.body.clear()
        transport = self.transport
        assert transport is not None
        compact = body.replace(b" ", b"")
        if self.url.endswith(b"/models"):
            transport.write(self.canned.models)
        elif b'"stream":true' in compact and b'"user":"paced"' in compact:
            transport.write(self.canned.stream_head)
            self.pace(transport, 0)
        elif b'"stream":true' in compact:
            # One write per chunk, as an engine emits tokens, so a proxy that buffers shows.
            transport.write(self.canned.stream_head)
            for piece in self.canned.stream_pieces:
                transport.write(piece)
        else:
            transport.write(self.canned.plain)


    def pace(self, transport: asyncio.Transport, sent: int) -> None:
        """The next token after ``token_s``, at a steady rate, like an engine decoding."""
        pieces = self.canned.stream_pieces

        def tick() -> None:
            if transport.is_closing():
                return
            transport.write(pieces[sent])
            if sent + 1 < len(pieces) - 2:
                self.pace(transport, sent + 1)
            else:  # the last token, then [DONE] and the end of the chunked body
                transport.write(pieces[-2] + pieces[-1])

        asyncio.get_running_loop().call_later(self.token_s, tick)


async def serve(host: str, port: int, chunks: int, token_ms: float = 20.0) -> None:
    canned = Canned(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Server(canned, token_ms / 1000), host, port,
                                      backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--token-ms", type=float, default=20.0,
                        help="interval between tokens of a paced stream")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.chunks, args.token_ms))


if __name__ == "__main__":
    main()
