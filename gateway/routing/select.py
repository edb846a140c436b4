"""The order in which a request tries backends: a lazy plan, consumed one attempt at a time.

    for each tier, priority 0 first:
        weighted routes that have a usable backend, drawn by weight without replacement;
        then the tier's weight-0 fallback routes, in version order;
        within a route, its backends as its balancer picks them, each at most once.

The proxy stops at the first attempt that reaches the client and caps the number of
attempts, so the usual request costs one draw. Routes without a usable backend are skipped
here; whether to wake a sleeping group is the caller's decision. With ``panic`` the same
order runs over the ejected backends still worth a try (``BackendPool.panic``), for when
nothing of the model is usable.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence

from gateway.domain import Route, Tier
from gateway.pool import Backend, BackendPool
from gateway.routing.algorithms import Balancer, RoundRobin

_DEFAULT = RoundRobin()


def plan(tiers: Sequence[Tier], pool: BackendPool, balancers: Mapping[str, Balancer],
         now: float, *, panic: bool = False) -> Iterator[tuple[Route, Backend]]:
    usable = pool.panic if panic else pool.usable
    for tier in tiers:
        weighted = [(r, b) for r in tier.weighted if (b := usable(r.pool_key, now))]
        while weighted:
            route, backends = weighted.pop(_draw(weighted))
            yield from _in_route(route, backends, balancers.get(route.id, _DEFAULT))
        for route in tier.fallbacks:
            backends = usable(route.pool_key, now)
            if backends:
                yield from _in_route(route, backends, balancers.get(route.id, _DEFAULT))


def _draw(candidates: list[tuple[Route, list[Backend]]]) -> int:
    if len(candidates) == 1:
        return 0
    total = sum(r.weight for r, _ in candidates)
    point = random.random() * total  # noqa: S311 (traffic split, not crypto)
    for index, (route, _) in enumerate(candidates):
        point -= route.weight
        if point < 0:
            return index
    return len(candidates) - 1


def _in_route(route: Route, backends: list[Backend],
              balancer: Balancer) -> Iterator[tuple[Route, Backend]]:
    remaining = backends
    while remaining:
        backend = balancer.pick(remaining)
        yield route, backend
        remaining = [b for b in remaining if b is not backend]
