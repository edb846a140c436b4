"""The built UI at / beside the APIs: caching headers, client routes, no shadowed API paths."""

from __future__ import annotations

from collections.abc import AsyncIterator
from itertools import count
from pathlib import Path

import httpx
import pytest
from sanic import Request, Sanic
from sanic.response import HTTPResponse, json

from bridge.webui import install_web_ui
from tests.support.pg import free_port

_names = count()


async def _serve(dist: Path) -> AsyncIterator[httpx.AsyncClient]:
    Sanic.test_mode = True
    app: Sanic = Sanic(f"webui_{next(_names)}", configure_logging=False)  # type: ignore[type-arg]
    app.config.MOTD = False
    app.config.FALLBACK_ERROR_FORMAT = "json"

    async def api(_: Request) -> HTTPResponse:
        return json({"api": True})

    app.add_route(api, "/api/v1/thing", name="thing")
    install_web_ui(app, dist)
    # Registered after the UI, as the gateway's routes are under `heteroflow up`.
    app.add_route(api, "/v1/models", name="models")
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=False)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        await server.before_stop()
        await server.close()
        await server.after_stop()


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><div id=root></div>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    (tmp_path / "robots.txt").write_text("User-agent: *")
    (tmp_path.parent / "secret.txt").write_text("outside")
    return tmp_path


@pytest.fixture
async def ui(dist: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _serve(dist):
        yield client


async def test_index_is_revalidated_and_assets_are_immutable(ui: httpx.AsyncClient) -> None:
    index = await ui.get("/")
    assert index.status_code == 200 and "root" in index.text
    assert index.headers["cache-control"] == "no-cache"
    assert index.headers["content-type"].startswith("text/html")
    asset = await ui.get("/assets/index-abc123.js")
    assert asset.status_code == 200
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in asset.headers["content-type"]
    other = await ui.get("/robots.txt")
    assert other.status_code == 200 and other.headers["cache-control"] == "no-cache"


async def test_client_routes_get_the_index(ui: httpx.AsyncClient) -> None:
    for path in ("/services", "/services/tg-1-abcd", "/control"):
        r = await ui.get(path)
        assert r.status_code == 200 and "root" in r.text, path
        assert r.headers["cache-control"] == "no-cache"


async def test_api_paths_are_never_shadowed(ui: httpx.AsyncClient) -> None:
    assert (await ui.get("/api/v1/thing")).json() == {"api": True}
    assert (await ui.get("/v1/models")).json() == {"api": True}
    for path in ("/api/v1/nope", "/v1/nope", "/metrics", "/healthz", "/readyz", "/api"):
        r = await ui.get(path)
        assert r.status_code == 404, path
        assert "id=root" not in r.text


async def test_missing_asset_is_404_not_html(ui: httpx.AsyncClient) -> None:
    # A stale hashed name must fail loudly, not hand a <script> tag an HTML page.
    r = await ui.get("/assets/index-old999.js")
    assert r.status_code == 404


async def test_no_file_outside_dist(ui: httpx.AsyncClient) -> None:
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/assets/..%2f..%2fsecret.txt"):
        r = await ui.get(path)
        assert "outside" not in r.text, path


async def test_unbuilt_ui_says_how_to_build(tmp_path: Path) -> None:
    async for client in _serve(tmp_path / "missing"):
        r = await client.get("/services")
        assert r.status_code == 200 and "make up" in r.text


async def test_api_reads_carry_an_etag_and_answer_304_when_unchanged(admin: httpx.AsyncClient
                                                                      ) -> None:
    # The web UI polls the list; an unchanged list costs an empty 304.
    first = await admin.get("/task-groups")
    assert first.status_code == 200
    tag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, no-cache"
    again = await admin.get("/task-groups", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == tag
    other = await admin.get("/task-groups", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.json() == first.json()
    text = await admin.get("/openapi.json")
    assert text.headers.get("etag")  # any JSON read
    missing = await admin.get("/task-groups/tg-0-none")
    assert missing.status_code == 404 and "etag" not in missing.headers
