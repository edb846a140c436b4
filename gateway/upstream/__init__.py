"""A lean HTTP/1.1 client for the hot path: keep-alive pools per origin on asyncio protocols.

Why not aiohttp or httpx here: a general client spends tens of microseconds per request on
objects the gateway never looks at, and the gateway's target (thousands of requests per
second on one core) leaves no room for that. This package does only what a relay needs:
one request head plus body out, status, headers and body chunks back, flow control, explicit
connection limits and timeouts. Parsing is httptools (llhttp), the parser Sanic itself uses.
"""

from gateway.upstream.client import UpstreamClient
from gateway.upstream.errors import (
    ConnectFailed,
    ConnectionClosed,
    ResponseTooLarge,
    UpstreamError,
    UpstreamTimeout,
)
from gateway.upstream.origin import Origin
from gateway.upstream.response import Response

__all__ = [
    "ConnectFailed",
    "ConnectionClosed",
    "Origin",
    "Response",
    "ResponseTooLarge",
    "UpstreamClient",
    "UpstreamError",
    "UpstreamTimeout",
]
