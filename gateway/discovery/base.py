"""The discovery protocol: keep the pool's group members and their health current.

A discovery source is told the world (``update(snapshot)``) whenever the snapshot changes and
owns the pool entries of the task groups that active routes target; external routes are
not its business. ``DISCOVERIES`` maps a mode name to a factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from gateway.domain import Group, Snapshot
from gateway.metrics import GatewayMetrics
from gateway.pool import BackendPool
from gateway.settings import GatewaySettings


@dataclass(frozen=True, slots=True)
class DiscoveryContext:
    settings: GatewaySettings
    pool: BackendPool
    session: aiohttp.ClientSession  # control-plane HTTP (Consul, probes), not the hot path
    metrics: GatewayMetrics


class Discovery(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def update(self, snapshot: Snapshot) -> None:
        """The groups to serve may have changed; adjust what is watched or probed."""
        ...

    def health(self) -> dict[str, object]:
        """State for the health endpoint: at least ``{"mode": ..., "ok": bool}``."""
        ...


def routed_groups(snapshot: Snapshot) -> dict[str, Group]:
    """The task groups that at least one active route sends traffic to."""
    return {r.group_id: snapshot.groups[r.group_id] for r in snapshot.routes
            if r.group_id is not None and r.group_id in snapshot.groups}


DiscoveryFactory = Callable[[DiscoveryContext], Discovery]
