"""The real bridge app on a loopback port, placing through a Nomad address (the double's, or
a real Nomad's), for the Nomad placement and Nomad + Consul end-to-end tests."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from sanic import Sanic

from bridge.app import create_app
from bridge.services.users import bootstrap_admin
from bridge.settings import BridgeSettings
from bridge.storage.db import Database
from bridge.storage.embedded import EmbeddedPostgres
from tests.support.pg import TEST_SECRET_KEY, free_port, fresh_database

_apps = itertools.count()  # Sanic wants a name per app in a process


async def start_bridge(pg: EmbeddedPostgres, double_address: str, db_url: str | None = None,
                       **settings: Any) -> tuple[Sanic, Any, str, str]:  # type: ignore[type-arg]
    url = db_url or fresh_database(pg)
    db = Database(url)
    await db.open()
    token = await bootstrap_admin(db)
    await db.close()
    port = free_port()
    settings.setdefault("model_roots", (Path("/models"),))
    config = BridgeSettings(home=Path("/nonexistent"), port=port, secret_key=TEST_SECRET_KEY,
                            nomad_addr=double_address,
                            reconcile_resync_seconds=settings.pop("resync", 30.0), **settings)
    Sanic.test_mode = True
    app = create_app(config, url, name=f"nomad_bridge_{next(_apps)}")
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True,
                                     access_log=False)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    return app, server, url, token or ""


async def stop_bridge(server: Any) -> None:
    await server.before_stop()
    await server.close()
    await server.after_stop()
