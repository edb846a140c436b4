"""Who is acting and on which request: passed to every service call that writes."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.domain.models import Principal


@dataclass(frozen=True, slots=True)
class Actor:
    principal: Principal | None  # None: the system itself (bootstrap, reconcilers)
    request_id: str | None = None
