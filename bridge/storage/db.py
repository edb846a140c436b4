"""Connection pool lifecycle and the transaction boundary.

Services own transactions (``async with db.transaction() as conn``); storage modules take
the connection they are handed and never commit on their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from bridge.errors import Conflict, StorageUnavailable

Conn = psycopg.AsyncConnection[DictRow]


class DuplicateKey(Exception):
    """A unique constraint refused a write; ``constraint`` names it (e.g. task_groups_name_key)."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.constraint = constraint


class MissingReference(Exception):
    """A foreign key pointed at a row that does not exist."""

    def __init__(self, constraint: str) -> None:
        super().__init__(constraint)
        self.constraint = constraint


class Database:
    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": False},
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
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.errors.UniqueViolation as exc:
            raise DuplicateKey(exc.diag.constraint_name or "") from exc
        except psycopg.errors.ForeignKeyViolation as exc:
            raise MissingReference(exc.diag.constraint_name or "") from exc
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
            # Two writers met (the database is fine): nothing was written; a retry is safe.
            raise Conflict("a concurrent change got in the way; nothing was changed, retry",
                           details={"reason": type(exc).__name__}) from exc
        except psycopg.OperationalError as exc:
            raise StorageUnavailable(
                "the database cannot be reached; retry shortly", details={"reason": str(exc)}
            ) from exc

    async def fetch_all(self, query: Any, params: Any = None) -> list[DictRow]:
        async with self.transaction() as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall()


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
