"""Load-balancing algorithms: one small protocol and a registry of factories.

A balancer picks one backend among a route's usable ones. It never sees unusable backends
and never counts in-flight requests itself: the proxy increments ``Backend.inflight`` when
it sends and decrements it in a ``finally`` (which also runs when the client disconnects).
Adding an algorithm is one class and one registry line.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

from gateway.pool import Backend
from heteroflow_contracts.algorithms import (
    DEFAULT_ALGORITHM,
    LEAST_CONNECTIONS,
    RANDOM,
    ROUND_ROBIN,
)


class Balancer(Protocol):
    def pick(self, backends: Sequence[Backend]) -> Backend:
        """One of ``backends`` (never empty)."""
        ...


class RoundRobin:
    __slots__ = ("_next",)

    def __init__(self) -> None:
        self._next = 0

    def pick(self, backends: Sequence[Backend]) -> Backend:
        index = self._next % len(backends)
        self._next = index + 1
        return backends[index]


class Random:
    __slots__ = ()

    def pick(self, backends: Sequence[Backend]) -> Backend:
        return backends[random.randrange(len(backends))]  # noqa: S311 (not crypto)


class LeastConnections:
    """Fewest in-flight requests; ties broken at random so equal backends share evenly."""

    __slots__ = ()

    def pick(self, backends: Sequence[Backend]) -> Backend:
        if len(backends) == 1:
            return backends[0]
        low = min(b.inflight for b in backends)
        tied = [b for b in backends if b.inflight == low]
        return tied[0] if len(tied) == 1 else tied[random.randrange(len(tied))]  # noqa: S311


BALANCERS: dict[str, Callable[[], Balancer]] = {
    ROUND_ROBIN: RoundRobin,
    RANDOM: Random,
    LEAST_CONNECTIONS: LeastConnections,
}


def make_balancer(name: str) -> Balancer:
    return BALANCERS.get(name, BALANCERS[DEFAULT_ALGORITHM])()
