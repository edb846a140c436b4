"""Users and their REST bearer tokens: bootstrap, authenticate, create, revoke."""

from __future__ import annotations

import time

from bridge.domain import ids
from bridge.domain.models import Principal, Role, User
from bridge.errors import Conflict, DuplicateKey, NameTaken, NotFound, Unauthorized
from bridge.services.context import Actor
from bridge.storage import audit
from bridge.storage import users as user_rows
from bridge.storage.db import Conn, Database
from heteroflow_contracts.credentials import hash_secret, secret_matches, secret_prefix


async def bootstrap_admin(db: Database) -> str | None:
    """Create the first admin when there are no users; return its token once, else None."""
    async with db.transaction() as conn:
        # Serialise concurrent first starts: only one of them may create the admin.
        await user_rows.lock_users(conn)
        if await user_rows.count_users(conn) > 0:
            return None
        user = User(id=ids.new_user_id(), name="admin", role=Role.ADMIN)
        await user_rows.insert_user(conn, user)
        token_id, token = await _issue_token(conn, user.id, "bootstrap")
        await audit.append(conn, actor=None, action="user.bootstrap", object_type="user",
                           object_id=user.id, details={"name": user.name, "token_id": token_id})
    return token


class TokenCache:
    """Recently verified tokens, by digest, for a few seconds.

    Saves two queries per API call; a revoked token stops working on this process at once
    (revoke_token evicts it) and on other bridge replicas within ``ttl`` seconds.
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, digest: str) -> Principal | None:
        found = self._entries.get(digest)
        if found is None or found[1] < time.monotonic():
            self._entries.pop(digest, None)
            return None
        return found[0]

    def put(self, digest: str, principal: Principal) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # bounded: a burst of distinct tokens costs a few queries
        self._entries[digest] = (principal, time.monotonic() + self.ttl)

    def evict_token(self, token_id: str) -> None:
        for digest, (principal, _) in list(self._entries.items()):
            if principal.token_id == token_id:
                del self._entries[digest]


async def authenticate(db: Database, token: str, cache: TokenCache | None = None) -> Principal:
    digest = hash_secret(token)
    if cache is not None and (known := cache.get(digest)) is not None:
        return known
    async with db.transaction() as conn:
        found = await user_rows.principal_for_token_hash(conn, digest)
        if found is None or not secret_matches(token, found[1]):
            raise Unauthorized("the bearer token is unknown or revoked",
                               details={"hint": "send Authorization: Bearer <token>"})
        await user_rows.touch_token(conn, found[0].token_id)
    if cache is not None:
        cache.put(digest, found[0])
    return found[0]


async def create_user(db: Database, name: str, role: Role, actor: Actor) -> tuple[User, str, str]:
    """A new user with a first token; returns (user, token id, token clear text)."""
    user = User(id=ids.new_user_id(), name=name, role=role)
    try:
        async with db.transaction() as conn:
            await user_rows.insert_user(conn, user)
            token_id, token = await _issue_token(conn, user.id, "default")
            await audit.append(conn, actor=actor.principal, action="user.create",
                               object_type="user", object_id=user.id,
                               request_id=actor.request_id,
                               details={"name": name, "role": role.value})
            stored = await user_rows.get_user(conn, user.id)
    except DuplicateKey as exc:
        raise NameTaken(f"a user named {name!r} already exists",
                        details={"field": "name"}) from exc
    assert stored is not None
    return stored, token_id, token


async def list_users(db: Database) -> list[User]:
    async with db.transaction() as conn:
        return await user_rows.list_users(conn)


async def create_token(db: Database, user_id: str, name: str, actor: Actor) -> tuple[str, str]:
    async with db.transaction() as conn:
        if await user_rows.get_user(conn, user_id) is None:
            raise NotFound(f"no user {user_id}", details={"id": user_id})
        token_id, token = await _issue_token(conn, user_id, name)
        await audit.append(conn, actor=actor.principal, action="token.create",
                           object_type="api_token", object_id=token_id,
                           request_id=actor.request_id, details={"user_id": user_id})
    return token_id, token


async def revoke_token(
    db: Database, token_id: str, actor: Actor, cache: TokenCache | None = None
) -> None:
    if cache is not None:
        cache.evict_token(token_id)
    async with db.transaction() as conn:
        if await user_rows.is_last_admin_token(conn, token_id):
            # nobody could manage users, tokens or anything else any more
            raise Conflict("this is the last admin token; issue another admin token first",
                           details={"id": token_id})
        if not await user_rows.revoke_token(conn, token_id):
            raise NotFound(f"no live token {token_id}", details={"id": token_id})
        await audit.append(conn, actor=actor.principal, action="token.revoke",
                           object_type="api_token", object_id=token_id,
                           request_id=actor.request_id)
    if cache is not None:  # again: a request that read it before the commit may cache it
        cache.evict_token(token_id)


async def _issue_token(conn: Conn, user_id: str, name: str) -> tuple[str, str]:
    token = ids.new_user_token()
    token_id = ids.new_token_id()
    await user_rows.insert_token(conn, token_id=token_id, user_id=user_id, name=name,
                                 prefix=secret_prefix(token), token_hash=hash_secret(token))
    return token_id, token


async def ensure_service_account(db: Database, name: str, role: Role) -> tuple[str, str]:
    """A service account (for this machine's agent or gateway) and a fresh token for it.

    Called at each start by ``heteroflow up``; the previous tokens of the account are
    revoked, so only the token handed to this run's component works.
    """
    async with db.transaction() as conn:
        found = await user_rows.user_id_by_name(conn, name)
        if found is None:
            user = User(id=ids.new_user_id(), name=name, role=role)
            await user_rows.insert_user(conn, user)
            user_id = user.id
            await audit.append(conn, actor=None, action="user.create", object_type="user",
                               object_id=user_id, details={"name": name, "role": role.value})
        else:
            user_id = found
            await user_rows.revoke_tokens_of(conn, user_id)
        _, token = await _issue_token(conn, user_id, "local")
    return user_id, token
