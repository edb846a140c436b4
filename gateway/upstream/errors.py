"""Why an upstream exchange failed. ``before_response`` tells the caller whether it may retry.

    UpstreamError
    ├── ConnectFailed       no connection (refused, unreachable, connect timeout, TLS)
    ├── UpstreamTimeout     connected, but no byte within the time allowed
    ├── ConnectionClosed    the peer closed the connection, or sent what is not HTTP
    └── ResponseTooLarge    the body passed the configured bound
"""

from __future__ import annotations


class UpstreamError(Exception):
    kind = "error"

    def __init__(self, message: str, *, before_response: bool = True) -> None:
        super().__init__(message)
        # True while no byte of a response has arrived: nothing reached the client yet.
        self.before_response = before_response


class ConnectFailed(UpstreamError):
    kind = "connect"


class UpstreamTimeout(UpstreamError):
    kind = "timeout"


class ConnectionClosed(UpstreamError):
    kind = "closed"


class ResponseTooLarge(UpstreamError):
    kind = "too_large"
