"""BoundedHttpProtocol: Sanic's HTTP/1.1 protocol with a bound on the whole request's arrival.

Sanic's request timeout is an idle timer, reset by every byte received: a client that sends
one header byte every second holds a connection (and a slot) for as long as it likes. Here
the time is counted from the request's first byte until its headers are in and, while the
handler still waits for the body, until the body is in too. Past ``REQUEST_TIMEOUT`` the
client gets a 408 and the connection is closed. Both entry points use it: the standalone
gateway and ``heteroflow up``/``server``, whose app the gateway attaches to.
"""

from __future__ import annotations

import sys
from time import monotonic
from typing import Any

from sanic.exceptions import RequestTimeout
from sanic.http import Stage
from sanic.server.protocols.http_protocol import HttpProtocol


class BoundedHttpProtocol(HttpProtocol):
    __slots__ = ("_request_began",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_began = 0.0

    def data_received(self, data: bytes) -> None:
        http = getattr(self, "_http", None)  # set once the connection's task runs
        if http is None or http.stage is Stage.IDLE:
            self._request_began = monotonic()  # the first bytes of a new request
        super().data_received(data)

    def check_timeouts(self) -> None:
        http = getattr(self, "_http", None)
        if (self._task and http is not None and self._request_began
                and (http.stage is Stage.REQUEST
                     or (http.stage is Stage.HANDLER and http.request_body))
                and monotonic() - self._request_began > self.request_timeout):
            http.exception = RequestTimeout("the request was not received in time")
            http.keep_alive = False
            http.request_body = None  # abandoned: not drained after the 408, just closed
            self._request_began = 0.0
            if sys.version_info < (3, 14):
                self._task.cancel("the request was not received in time")
            else:
                self._task.cancel()
            return
        super().check_timeouts()  # type: ignore[no-untyped-call]
