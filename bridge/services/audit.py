"""Reading the audit trail."""

from __future__ import annotations

from bridge.domain.models import AuditEntry
from bridge.storage import audit
from bridge.storage.db import Database


async def list_audit(
    db: Database, *, object_type: str | None, object_id: str | None, actor: str | None,
    action: str | None, limit: int, offset: int,
) -> tuple[list[AuditEntry], int]:
    async with db.transaction() as conn:
        return await audit.list_entries(conn, object_type=object_type, object_id=object_id,
                                        actor=actor, action=action, limit=limit, offset=offset)
