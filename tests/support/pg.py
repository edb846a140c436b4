"""Test support shared by every test folder: loopback ports and throwaway databases cloned
from one migrated template on the session's embedded PostgreSQL."""

from __future__ import annotations

import itertools
import socket

import psycopg
from psycopg import sql

from bridge.storage.embedded import EmbeddedPostgres

TEMPLATE = "hf_template"
TEST_SECRET_KEY = "x0n7qX2V3wKo8C0Ff2m1bMmkKQyq8zE7rS0h3Qd8Y6A="  # a Fernet key for tests only
_counter = itertools.count()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at another database."""
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


def fresh_database(pg: EmbeddedPostgres) -> str:
    """A new database cloned from the migrated template; returns its URL."""
    name = f"t{next(_counter)}_{socket.gethostname()[:8].lower().replace('-', '_')}"
    with psycopg.connect(pg.admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(TEMPLATE)))
    return with_database(pg.admin_url(), name)
