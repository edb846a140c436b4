"""``heteroflow up`` and ``heteroflow server``: run the bridge until interrupted.

``up`` is the one-machine default: embedded PostgreSQL under HETEROFLOW_HOME unless
HETEROFLOW_DATABASE_URL names another server, migrations, the first admin, then the API on
127.0.0.1:3333. ``server`` is the same API against an external database only, for when the
bridge runs as a Nomad job beside others.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

from bridge.app import create_app
from bridge.logs import configure_logging
from bridge.services.users import bootstrap_admin
from bridge.settings import BridgeSettings
from bridge.storage.db import Database
from bridge.storage.embedded import EmbeddedPostgres
from bridge.storage.migrate import apply_migrations

log = logging.getLogger("bridge.cli")


def run_server(settings: BridgeSettings, *, embedded_allowed: bool) -> int:
    configure_logging(settings.log_level, settings.log_format)
    settings.home.mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedPostgres | None = None
    try:
        if settings.database_url:
            url = settings.database_url
        elif embedded_allowed:
            embedded = EmbeddedPostgres(settings.pgdata)
            url = embedded.start()
        else:
            print("heteroflow server needs HETEROFLOW_DATABASE_URL; use `heteroflow up` for "
                  "the embedded database", file=sys.stderr)
            return 2
        token = asyncio.run(_prepare_database(url))
        if token is not None:
            _write_admin_token(settings.admin_token_file, token)
        _print_banner(settings, token)
        app = create_app(settings, url)
        app.run(host=settings.host, port=settings.port, single_process=settings.workers == 1,
                workers=settings.workers, access_log=True, motd=False)
        return 0
    finally:
        if embedded is not None:
            embedded.stop()
            log.info("embedded postgres stopped")


async def _prepare_database(url: str) -> str | None:
    await apply_migrations(url)
    db = Database(url, min_size=1, max_size=1)
    await db.open()
    try:
        return await bootstrap_admin(db)
    finally:
        await db.close()


def _write_admin_token(path: Path, token: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)


def _print_banner(settings: BridgeSettings, token: str | None) -> None:
    base = f"http://{settings.host}:{settings.port}"
    lines = [
        "",
        "HeteroFlow is starting",
        f"  REST API      {base}/api/v1   (OpenAPI: {base}/api/v1/openapi.json)",
        f"  data          {settings.home}",
    ]
    if token is not None:
        lines += [
            f"  admin token   {token}",
            f"                (shown once; also saved to {settings.admin_token_file}, mode 0600)",
        ]
    else:
        lines.append(f"  admin token   in {settings.admin_token_file}")
    lines += [
        "",
        "  try:  export HETEROFLOW_TOKEN=$(cat " + str(settings.admin_token_file) + ")",
        f"        heteroflow -address {base} service list",
        "",
    ]
    # The banner is for the person at the terminal, not the log stream.
    print("\n".join(lines), file=sys.stdout, flush=True)
