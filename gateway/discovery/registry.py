"""Discovery modes by name: ``consul`` when ``CONSUL_HTTP_ADDR`` is set, else ``embedded``."""

from __future__ import annotations

from gateway.discovery.base import DiscoveryContext, DiscoveryFactory
from gateway.discovery.checker import HealthChecker
from gateway.discovery.consul import ConsulDiscovery

DISCOVERIES: dict[str, DiscoveryFactory] = {
    "consul": ConsulDiscovery,
    "embedded": HealthChecker,
}


def discovery_mode(ctx: DiscoveryContext) -> str:
    return "consul" if ctx.settings.uses_consul else "embedded"
