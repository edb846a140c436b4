"""users and api_tokens rows. Tokens are stored as SHA-256 digests only."""

from __future__ import annotations

from psycopg.rows import DictRow

from bridge.domain.models import Principal, Role, User
from bridge.storage.db import Conn


def row_to_user(row: DictRow) -> User:
    return User(id=row["id"], name=row["name"], role=Role(row["role"]),
                disabled=row["disabled"], created_at=row["created_at"])


async def insert_user(conn: Conn, user: User) -> None:
    await conn.execute(
        "INSERT INTO users (id, name, role) VALUES (%s, %s, %s)",
        (user.id, user.name, user.role.value),
    )


async def insert_token(
    conn: Conn, *, token_id: str, user_id: str, name: str, prefix: str, token_hash: str
) -> None:
    await conn.execute(
        "INSERT INTO api_tokens (id, user_id, name, token_prefix, token_hash)"
        " VALUES (%s, %s, %s, %s, %s)",
        (token_id, user_id, name, prefix, token_hash),
    )


async def count_users(conn: Conn) -> int:
    cur = await conn.execute("SELECT count(*) AS n FROM users")
    row = await cur.fetchone()
    return int(row["n"]) if row else 0


async def list_users(conn: Conn) -> list[User]:
    cur = await conn.execute(
        "SELECT id, name, role, disabled, created_at FROM users ORDER BY created_at, id"
    )
    return [row_to_user(r) for r in await cur.fetchall()]


async def get_user(conn: Conn, user_id: str) -> User | None:
    cur = await conn.execute(
        "SELECT id, name, role, disabled, created_at FROM users WHERE id = %s", (user_id,)
    )
    row = await cur.fetchone()
    return row_to_user(row) if row else None


async def principal_for_token_hash(conn: Conn, token_hash: str) -> tuple[Principal, str] | None:
    """The live user behind a token digest, and the stored digest to compare against."""
    cur = await conn.execute(
        "SELECT t.id AS token_id, t.token_hash, u.id AS user_id, u.name, u.role"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = %s AND t.revoked_at IS NULL AND NOT u.disabled",
        (token_hash,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    principal = Principal(user_id=row["user_id"], name=row["name"], role=Role(row["role"]),
                          token_id=row["token_id"])
    return principal, row["token_hash"]


async def touch_token(conn: Conn, token_id: str) -> None:
    await conn.execute(
        "UPDATE api_tokens SET last_used_at = now() WHERE id = %s"
        " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        (token_id,),
    )


async def revoke_token(conn: Conn, token_id: str) -> bool:
    cur = await conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
        (token_id,),
    )
    return cur.rowcount == 1


async def lock_users(conn: Conn) -> None:
    """Serialise concurrent first starts until the transaction ends."""
    await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")


async def user_id_by_name(conn: Conn, name: str) -> str | None:
    cur = await conn.execute("SELECT id FROM users WHERE name = %s", (name,))
    row = await cur.fetchone()
    return str(row["id"]) if row else None


async def revoke_tokens_of(conn: Conn, user_id: str) -> None:
    await conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE user_id = %s"
                       " AND revoked_at IS NULL", (user_id,))


async def is_last_admin_token(conn: Conn, token_id: str) -> bool:
    """Whether ``token_id`` is the one live token of an enabled admin left. The admins'
    live tokens are locked, so two revocations at once cannot each leave only the other."""
    cur = await conn.execute(
        "SELECT t.id FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE u.role = 'admin' AND NOT u.disabled AND t.revoked_at IS NULL"
        " FOR UPDATE OF t")
    return [r["id"] for r in await cur.fetchall()] == [token_id]
