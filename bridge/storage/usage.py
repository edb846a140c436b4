"""Usage the gateways recorded (gateway_usage, per minute), summed per bucket."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.storage.db import Conn


async def sum_usage(conn: Conn, *, api_key_id: str | None, route_id: str | None,
                    model: str | None, start: datetime | None, end: datetime | None,
                    bucket: str) -> list[dict[str, Any]]:
    assert bucket in ("minute", "hour", "day")
    clauses = ["minute >= COALESCE(%s, now() - interval '24 hours')",
               "minute < COALESCE(%s, now() + interval '1 minute')"]
    params: list[Any] = [start, end]
    for column, value in (("api_key_id", api_key_id), ("route_id", route_id),
                          ("model_name", model)):
        if value:
            clauses.append(f"{column} = %s")
            params.append(value)
    cur = await conn.execute(
        "SELECT date_trunc(%s, minute) AS bucket_start, api_key_id, route_id, model_name,"
        " sum(requests)::bigint AS requests, sum(errors)::bigint AS errors,"
        " sum(prompt_tokens)::bigint AS prompt_tokens,"
        " sum(completion_tokens)::bigint AS completion_tokens"
        f" FROM gateway_usage WHERE {' AND '.join(clauses)}"
        " GROUP BY 1, 2, 3, 4 ORDER BY 1 DESC, 2, 3 LIMIT 10000",
        [bucket, *params])
    return [dict(r) for r in await cur.fetchall()]
