"""Usage the gateways recorded, summed per minute, hour or day."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.storage import usage as usage_rows
from bridge.storage.db import Database


async def usage(db: Database, *, api_key_id: str | None, route_id: str | None,
                model: str | None, start: datetime | None, end: datetime | None,
                bucket: str) -> list[dict[str, Any]]:
    async with db.transaction() as conn:
        return await usage_rows.sum_usage(conn, api_key_id=api_key_id, route_id=route_id,
                                          model=model, start=start, end=end, bucket=bucket)
