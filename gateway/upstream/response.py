"""Response: what one upstream exchange delivers, fed by the connection's parser callbacks.

The connection pushes (head, body chunks, end, error); the relay pulls. Waiting is done on a
plain future with a ``call_later`` deadline rather than ``asyncio.wait_for``, which would
create a task per wait. Body chunks are buffered up to a high-water mark, past which the
connection stops reading from the socket, so a slow client never makes the gateway hold an
unbounded amount of a fast upstream's output.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from gateway.upstream.errors import ConnectionClosed, ResponseTooLarge, UpstreamTimeout

if TYPE_CHECKING:
    from gateway.upstream.connection import Connection

HIGH_WATER = 256 * 1024


class Response:
    __slots__ = ("_buffered", "_chunks", "_conn", "_error", "_loop", "_max_bytes", "_paused",
                 "_size", "_stream", "_waiter", "complete", "has_head", "headers",
                 "received_any", "status")

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop, *, stream: bool,
                 max_bytes: int) -> None:
        self._conn = conn
        self._loop = loop
        self._stream = stream
        self._max_bytes = max_bytes
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._size = 0
        self._paused = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.has_head = False
        self.complete = False
        self.received_any = False

    # -- consumer side ---------------------------------------------------------------------

    async def wait_head(self, wait_s: float) -> None:
        """Until status and headers are in (streaming) or the whole body is (otherwise)."""
        while not (self.complete if not self._stream else self.has_head):
            if self._error is not None:
                raise self._error
            await self._wait(wait_s)
        if self._error is not None and not self.complete:
            raise self._error

    def body(self) -> bytes:
        """The whole body of a completed non-streaming response."""
        chunks = self._chunks
        if len(chunks) == 1:
            return chunks[0]
        return b"".join(chunks)

    async def next_chunk(self, wait_s: float) -> bytes | None:
        """All of the body that arrived since the last call (waiting for at least one
        byte); ``None`` at the end. Taking what is there in one piece saves writes without
        ever waiting for more."""
        while True:
            if self._chunks:
                chunks = self._chunks
                chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                if self._paused:
                    self._paused = False
                    self._conn.resume_reading()
                return chunk
            if self.complete:
                return None
            if self._error is not None:
                raise self._error
            await self._wait(wait_s)

    def header(self, name: bytes) -> bytes | None:
        """First value of a header (``name`` lower-case)."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    def abort(self) -> None:
        """Give up on the rest: the connection cannot be reused mid-response, so close it."""
        if not self.complete:
            self._conn.close()
        self._chunks.clear()
        self._buffered = 0

    async def _wait(self, wait_s: float) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(wait_s, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- producer side (called by the connection) -------------------------------------------

    def feed_head(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.headers = headers
        self.has_head = True
        if self._stream:
            self._wake()

    def feed_body(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._max_bytes:
            self.feed_error(ResponseTooLarge(
                f"upstream response larger than {self._max_bytes} bytes", before_response=False))
            self._conn.close()
            return
        self._chunks.append(data)
        if self._stream:
            self._buffered += len(data)
            if not self._paused and self._buffered > HIGH_WATER:
                self._paused = True
                self._conn.pause_reading()
            self._wake()

    def feed_end(self) -> None:
        self.complete = True
        self._wake()

    def feed_error(self, exc: BaseException) -> None:
        if self.complete or self._error is not None:
            return
        self._error = exc
        self._wake()

    def note_bytes(self) -> None:
        self.received_any = True


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeout("no response from upstream in time"))


def closed_error(response: Response) -> ConnectionClosed:
    """The error for a connection that ended before the response did."""
    return ConnectionClosed("upstream closed the connection",
                            before_response=not response.received_any)
