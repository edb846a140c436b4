"""Connection pool lifecycle and the transaction boundary.

Services own transactions (``async with db.transaction() as conn``); storage modules take
the connection they are handed and never commit on their own.

Every database error leaves ``transaction()`` translated: a unique or foreign key refusal
as the two exceptions below (services turn them into their own words), any other refusal
of the data (a NUL character, a NOT NULL or CHECK constraint, a number out of range) as a
422, an unreachable server as a 503, a lost race (deadlock, serialization) as a 409, and
the rest as an internal error. PostgreSQL's
messages quote the row ("Failing row contains ...", "Key (name)=(...)"), so what is kept
and logged is the SQLSTATE and the names of the constraint, table and column, never the
message itself.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from bridge.errors import (
    BridgeError,
    Conflict,
    DuplicateKey,
    MissingReference,
    StorageUnavailable,
    ValidationFailed,
)

log = logging.getLogger(__name__)
Conn = psycopg.AsyncConnection[DictRow]


class Database:
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10,
                 acquire_timeout_s: float = 5.0) -> None:
        self.url = url
        # A request waits this long for a connection, then answers 503: during an outage
        # clients hear so within seconds, not after the pool's default 30 s.
        self.acquire_timeout_s = acquire_timeout_s
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": False,
                    "connect_timeout": max(1, int(acquire_timeout_s))},
            connection_class=psycopg.AsyncConnection[DictRow],
            name="heteroflow",
        )

    async def open(self) -> None:
        await self._pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """One transaction: committed when the block ends, rolled back on any exception."""
        try:
            async with self._pool.connection(timeout=self.acquire_timeout_s) as conn, \
                    conn.transaction():
                yield conn
        except psycopg.errors.UniqueViolation as exc:
            raise DuplicateKey(exc.diag.constraint_name or "") from None
        except psycopg.errors.ForeignKeyViolation as exc:
            raise MissingReference(exc.diag.constraint_name or "") from None
        except psycopg.Error as exc:
            raise translate(exc) from None

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether a connection answers ``SELECT 1`` within ``timeout_s``."""
        try:
            async with self._pool.connection(timeout=timeout_s) as conn:
                await conn.execute("SELECT 1")
                await conn.rollback()
        except (psycopg.Error, OSError):
            return False
        return True

    async def fetch_all(self, query: Any, params: Any = None) -> list[DictRow]:
        async with self.transaction() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()


def translate(exc: psycopg.Error) -> BridgeError:
    """The bridge error for a database error, carrying no value from the data."""
    diag = exc.diag
    where = {k: v for k, v in (("sqlstate", exc.sqlstate), ("constraint", diag.constraint_name),
                               ("table", diag.table_name), ("column", diag.column_name)) if v}
    if isinstance(exc, psycopg.OperationalError) or (exc.sqlstate or "").startswith(
            ("08", "53", "57P")):  # connection, resources, server shutting down
        return StorageUnavailable("the database cannot be reached; retry shortly",
                                  details={"reason": type(exc).__name__, **where})
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError) or \
            (exc.sqlstate or "").startswith(("22", "23")):
        column = f" in {where['column']}" if "column" in where else ""
        return ValidationFailed(f"the database refused a value{column}: "
                                f"{_data_words(exc)}", details=where)
    if (exc.sqlstate or "").startswith("40"):  # serialization failure, deadlock
        return Conflict("a concurrent change got in the way; retry",
                        details={"sqlstate": exc.sqlstate})
    log.error("database error", extra={"error_type": type(exc).__name__, **where,
                                       "stack": "".join(traceback.format_tb(exc.__traceback__))})
    return BridgeError("internal database error; the server log has its SQLSTATE",
                       details={})


def _data_words(exc: psycopg.Error) -> str:
    """What was wrong, in words that quote nothing the client sent."""
    if exc.sqlstate is None and "NUL" in str(exc):  # refused before it reached the server
        return "a string contains a NUL (0x00) character"
    words = {
        "22P05": "a string contains a NUL (\\u0000) character",
        "22021": "a string contains a character the database cannot store",
        "22003": "a number is out of range",
        "22001": "a string is too long",
        "23502": "a value that must be given is null",
        "23514": "a value is outside what the field allows",
    }
    return words.get(exc.sqlstate or "", "a value is not acceptable")


async def try_leadership(url: str, key: int) -> psycopg.AsyncConnection[Any] | None:
    """Hold a session advisory lock on a connection of its own: whoever holds it leads.

    The lock lasts as long as the returned connection; closing it (or the process dying)
    hands leadership to the next bridge replica.
    """
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise StorageUnavailable("the database cannot be reached", details={
            "reason": str(exc)}) from exc
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
    row = await cur.fetchone()
    if row and row[0]:
        return conn
    await conn.close()
    return None
