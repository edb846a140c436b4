"""ETags on the REST API's JSON reads, so the web UI's polling costs a 304 when nothing moved.

The UI polls the services list every two seconds. Each answer carries a strong ETag (a
digest of the body) and ``Cache-Control: private, no-cache``: the browser keeps the last
answer, revalidates it on every poll with If-None-Match, and gets an empty 304 while the
body is the same. The body is still computed (the digest is of it), so this saves transfer
and parsing, not the query; it never serves stale data, since each poll asks the server.
"""

from __future__ import annotations

import hashlib

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse

PREFIX = "/api/v1/"


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def install_etags(app: Sanic) -> None:  # type: ignore[type-arg]
    async def add_etag(request: Request, response: BaseHTTPResponse) -> HTTPResponse | None:
        if request.method != "GET" or response.status != 200:
            return None
        if not request.path.startswith(PREFIX):
            return None
        if not (response.content_type or "").startswith("application/json"):
            return None
        body = response.body
        if body is None:  # a streamed answer has no body to digest
            return None
        tag = etag_of(body)
        headers = {"etag": tag, "cache-control": "private, no-cache"}
        if tag in _candidates(request.headers.get("if-none-match", "")):
            return HTTPResponse(status=304, headers=headers)
        response.headers.update(headers)
        return None

    app.register_middleware(add_etag, "response")


def _candidates(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",") if part.strip()}
