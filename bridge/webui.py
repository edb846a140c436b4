"""The built web UI (web/dist) at ``/``, beside the APIs on the same port.

Vite names every built asset after its content hash, so ``/assets/*`` may be cached for a
year; ``index.html`` names the current hashes and must be revalidated on every load, or a
browser keeps running yesterday's UI after an upgrade. Any other path that is not a file is
a client-side route and gets ``index.html``; the API prefixes are never answered here, so an
unknown API path stays a JSON 404 instead of turning into an HTML page.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from sanic import Request, Sanic
from sanic.exceptions import NotFound
from sanic.response import HTTPResponse, file, html

DIST = Path(__file__).resolve().parent.parent / "web" / "dist"
RESERVED = ("api", "v1", "metrics", "healthz", "readyz")
IMMUTABLE = "public, max-age=31536000, immutable"
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>HeteroFlow</title></head><body><h1>HeteroFlow</h1>
<p>The web UI is not built. <code>make up</code> builds it (npm ci and vite build in
<code>web/</code>); the REST API is at <a href="/api/v1/openapi.json">/api/v1</a>.</p>
</body></html>"""


def install_web_ui(app: Sanic, dist: Path = DIST) -> None:  # type: ignore[type-arg]
    root = dist.resolve()

    async def serve(request: Request, path: str = "") -> HTTPResponse:
        first = path.split("/", 1)[0]
        if first in RESERVED:
            raise NotFound(f"no such API path: /{path}")
        index = root / "index.html"
        if not index.is_file():
            return html(NOT_BUILT, status=200, headers={"cache-control": "no-cache"})
        target = (root / path).resolve() if path else index
        if path and target.is_relative_to(root) and target.is_file():
            cache = IMMUTABLE if path.startswith("assets/") else "no-cache"
            mime = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            return await file(target, mime_type=mime, headers={"cache-control": cache})
        if path.startswith("assets/"):
            # A stale hashed name: answering index.html would hand a script tag HTML.
            raise NotFound(f"no such asset: /{path}")
        return await file(index, mime_type="text/html; charset=utf-8",
                          headers={"cache-control": "no-cache"})

    app.add_route(serve, "/", methods=["GET", "HEAD"], name="web_index")
    app.add_route(serve, "/<path:path>", methods=["GET", "HEAD"], name="web_files")
