"""Database errors leave the storage layer translated, and without the row's values: those
go neither to the client nor to the log."""

from __future__ import annotations

import logging

import pytest

from bridge.errors import BridgeError, ValidationFailed
from bridge.storage.db import Database

SECRET = "row-value-that-must-not-leak"


async def test_refused_value_is_422_and_quotes_nothing(db_url: str, caplog) -> None:
    db = Database(db_url)
    await db.open()
    try:
        caplog.set_level(logging.DEBUG)
        with pytest.raises(ValidationFailed) as refused:
            async with db.transaction() as conn:  # a CHECK constraint, a NOT NULL column
                await conn.execute("INSERT INTO users (id, name, role) VALUES (%s, %s, 'x')",
                                   (SECRET, SECRET))
        assert refused.value.details["sqlstate"] == "23514"
        assert SECRET not in repr(refused.value.to_body())
        with pytest.raises(ValidationFailed) as nul:
            async with db.transaction() as conn:
                await conn.execute("SELECT %s::text", ("a\x00b",))
        assert "NUL" in nul.value.message
        with pytest.raises(BridgeError) as ours:  # our own bug: a 500, logged by SQLSTATE
            async with db.transaction() as conn:
                await conn.execute(f"SELECT * FROM users WHERE name = '{SECRET}' ORDER BY nope")
        assert ours.value.status == 500 and SECRET not in repr(ours.value.to_body())
        assert ours.value.__cause__ is None and ours.value.__suppress_context__
        assert SECRET not in caplog.text
    finally:
        await db.close()
