"""Connection: one keep-alive HTTP/1.1 connection to an origin, as an asyncio protocol.

At most one exchange runs on a connection at a time (no pipelining). When a response ends
and both sides allow keep-alive, the connection hands itself back to its pool through
``on_release``; when it is lost, ``on_lost`` lets the pool forget it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import cast

import httptools

from gateway.upstream.errors import ConnectionClosed
from gateway.upstream.origin import Origin
from gateway.upstream.response import Response, closed_error


class Connection(asyncio.Protocol):
    __slots__ = ("_headers", "_keep_alive", "_loop", "_parser", "_response", "_transport",
                 "closed", "idle_since", "on_lost", "on_release", "origin", "reused")

    def __init__(self, origin: Origin, loop: asyncio.AbstractEventLoop,
                 on_release: Callable[[Connection], None],
                 on_lost: Callable[[Connection], None]) -> None:
        self.origin = origin
        self._loop = loop
        self.on_release = on_release
        self.on_lost = on_lost
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._response: Response | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._keep_alive = True
        self.closed = False
        self.reused = False
        self.idle_since = time.monotonic()

    # -- used by the pool and the response ---------------------------------------------------

    def send(self, data: bytes, *, stream: bool, max_bytes: int) -> Response:
        """Write one request and return the response it will receive."""
        response = Response(self, self._loop, stream=stream, max_bytes=max_bytes)
        if self.closed or self._transport is None:
            response.feed_error(ConnectionClosed("connection already closed"))
            return response
        self._response = response
        self._headers = []
        self._transport.write(data)
        return response

    def pause_reading(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.close()
        self.closed = True

    # -- asyncio protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have its methods.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        response = self._response
        if response is None:
            # Bytes nobody asked for: the stream is out of step; never reuse it.
            self.close()
            return
        response.note_bytes()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            response.feed_error(ConnectionClosed(f"upstream sent invalid HTTP: {exc}",
                                                 before_response=not response.has_head))
            self._response = None
            self.close()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        self._response = None
        if response is not None and not response.complete:
            if response.has_head and _delimited_by_close(response):
                response.feed_end()
            else:
                response.feed_error(closed_error(response))
        self.on_lost(self)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        response = self._response
        if response is not None:
            self._keep_alive = self._parser.should_keep_alive()
            response.feed_head(self._parser.get_status_code(), self._headers)

    def on_body(self, body: bytes) -> None:
        response = self._response
        if response is not None:
            response.feed_body(body)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None:
            return
        self._response = None
        keep = self._keep_alive and self._parser.should_keep_alive()
        response.feed_end()
        if keep and not self.closed:
            self.reused = True
            self.idle_since = time.monotonic()
            self.on_release(self)
        else:
            self.close()


def _delimited_by_close(response: Response) -> bool:
    """A body with neither a length nor chunked framing ends when the connection does."""
    length = response.header(b"content-length")
    encoding = response.header(b"transfer-encoding")
    return length is None and (encoding is None or b"chunked" not in encoding.lower())
