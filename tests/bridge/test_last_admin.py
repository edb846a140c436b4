"""The last admin token cannot be revoked: nobody could manage anything any more."""

from __future__ import annotations

import pytest

from bridge.domain.models import Role
from bridge.errors import Conflict
from bridge.services.context import Actor
from bridge.services.users import (
    authenticate,
    bootstrap_admin,
    create_token,
    create_user,
    revoke_token,
)
from bridge.storage.db import Database


async def test_last_admin_token_stays(db_url: str) -> None:
    db = Database(db_url)
    await db.open()
    try:
        token = await bootstrap_admin(db)
        assert token is not None
        admin = await authenticate(db, token)
        actor = Actor(principal=admin)
        [row] = await db.fetch_all("SELECT id, user_id FROM api_tokens")
        with pytest.raises(Conflict, match="last admin token"):
            await revoke_token(db, row["id"], actor)

        # a viewer's token does not count; a second admin token does
        await create_user(db, "someone", Role.VIEWER, actor)
        with pytest.raises(Conflict):
            await revoke_token(db, row["id"], actor)
        second_id, _ = await create_token(db, row["user_id"], "spare", actor)
        await revoke_token(db, row["id"], actor)
        with pytest.raises(Conflict):
            await revoke_token(db, second_id, actor)
    finally:
        await db.close()
