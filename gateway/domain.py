"""What the gateway knows about the world: immutable values, rebuilt whole on every change.

A ``Snapshot`` is built from the bridge's rows (see ``store.py``) and swapped in atomically,
so a request sees one consistent view for its whole life and coroutines share it without
locks. Nothing here does I/O.

Vocabulary: a *route* sends a model's traffic to a *target*, either a task group (whose
healthy tasks are its *backends*) or an external OpenAI-compatible base URL. Routes of one
model form *tiers* by priority (0 first); in a tier, routes with a weight share traffic by
weight and weight-0 routes are the tier's *fallbacks*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.upstream import Origin

ALGORITHMS = ("round_robin", "random", "least_connections")
_UNSAFE_IN_HEADERS = {c: None for c in range(32)} | {127: None}
RUNNING = "running"
ASLEEP = frozenset({"sleeping", "waking"})


def header_safe(value: str, limit: int = 200) -> str:
    """``value`` without control characters, fit to be a response header's value (route
    versions and backend ids are sent back to clients on every response)."""
    return value.translate(_UNSAFE_IN_HEADERS)[:limit]


@dataclass(frozen=True, slots=True)
class HealthSpec:
    """How the embedded checker probes a group's tasks (the endpoint's ``health_check``)."""

    kind: str = "http"  # http | tcp
    path: str = "/health"
    interval_s: float = 10.0
    timeout_s: float = 3.0
    unhealthy_threshold: int = 3

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> HealthSpec:
        if not data:
            return cls()
        kind = data.get("type", "http")
        path = data.get("path") or "/health"
        return cls(
            kind=kind if kind in ("http", "tcp") else "http",
            path=path if isinstance(path, str) and path.startswith("/") else "/health",
            interval_s=max(0.1, float(data.get("interval_seconds", 10))),
            timeout_s=max(0.1, float(data.get("timeout_seconds", 3))),
            unhealthy_threshold=max(1, int(data.get("unhealthy_threshold", 3))),
        )


@dataclass(frozen=True, slots=True)
class TaskInfo:
    id: str
    status: str
    address: str | None
    alloc_id: str | None


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    model_name: str  # the name its engine serves (``--served-model-name`` / alias)
    status: str
    algorithm: str
    health: HealthSpec
    endpoint_id: str | None
    tasks: tuple[TaskInfo, ...] = ()

    @property
    def service_name(self) -> str:
        """The Consul service Nomad registers for this group (from our jobspec)."""
        return f"hf-{self.name}"

    @property
    def running_tasks(self) -> tuple[TaskInfo, ...]:
        return tuple(t for t in self.tasks if t.status == RUNNING and t.address)

    @property
    def sleeping_tasks(self) -> tuple[TaskInfo, ...]:
        return tuple(t for t in self.tasks if t.status in ASLEEP)


@dataclass(frozen=True, slots=True)
class External:
    """An OpenAI-compatible upstream outside the cluster (base URL ends in /v1)."""

    url: str
    origin: Origin
    base_path: str  # "/v1"
    api_key: str | None = field(repr=False)  # decrypted, in memory only


@dataclass(frozen=True, slots=True)
class Route:
    id: str
    model_name: str
    version: str
    priority: int
    weight: int
    algorithm: str
    served_model: str  # what the body's "model" becomes
    group_id: str | None = None
    external: External | None = None
    first_byte_s: float | None = None  # None: the gateway's first_byte_timeout_s
    endpoint_id: str | None = None  # an external route's own endpoint (its keys')

    @property
    def pool_key(self) -> str:
        """Where this route's backends live in the pool: its group, or itself if external."""
        return self.group_id if self.group_id is not None else f"route:{self.id}"


@dataclass(frozen=True, slots=True)
class Tier:
    priority: int
    weighted: tuple[Route, ...]
    fallbacks: tuple[Route, ...]  # weight 0: used only when no weighted route can serve

    @property
    def routes(self) -> tuple[Route, ...]:
        return self.weighted + self.fallbacks


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What a valid API key may do: it belongs to one endpoint, hence one task group."""

    key_id: str
    endpoint_id: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    tiers: Mapping[str, tuple[Tier, ...]]  # model name -> tiers, priority 0 first
    groups: Mapping[str, Group]
    group_of_endpoint: Mapping[str, str]
    models_of_group: Mapping[str, frozenset[str]]  # what a key of the group's endpoint may use
    routes: tuple[Route, ...] = ()
    # model -> its routes' groups that have sleeping or waking tasks (absent: none asleep)
    asleep: Mapping[str, tuple[Group, ...]] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # rows skipped, each with its reason
    # An external route's endpoint -> that route, as the one tier its keys are served by.
    own_tiers: Mapping[str, tuple[Tier, ...]] = field(default_factory=dict)

    def allowed(self, grant: KeyGrant, model: str) -> bool:
        own = self.own_tiers.get(grant.endpoint_id)
        if own is not None:
            return own[0].routes[0].model_name == model
        group_id = self.group_of_endpoint.get(grant.endpoint_id)
        return group_id is not None and model in self.models_of_group.get(group_id, ())

    def tiers_for(self, grant: KeyGrant, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        """The plan's tiers for an allowed key: an external route's keys get that route."""
        return self.own_tiers.get(grant.endpoint_id, tiers)

    def models_for(self, grant: KeyGrant) -> list[str]:
        own = self.own_tiers.get(grant.endpoint_id)
        if own is not None:
            return [own[0].routes[0].model_name]
        group_id = self.group_of_endpoint.get(grant.endpoint_id)
        if group_id is None:
            return []
        return sorted(m for m in self.models_of_group.get(group_id, ()) if m in self.tiers)


EMPTY = Snapshot(tiers=MappingProxyType({}), groups=MappingProxyType({}),
                 group_of_endpoint=MappingProxyType({}), models_of_group=MappingProxyType({}))


def build_snapshot(groups: list[Group], routes: list[Route],
                   problems: list[str] | None = None) -> Snapshot:
    """Index groups and active routes into tiers and key permissions."""
    by_id = {g.id: g for g in groups}
    kept: list[Route] = []
    notes = list(problems or ())
    for route in routes:
        if route.group_id is not None and route.group_id not in by_id:
            notes.append(f"route {route.id} skipped: its task group {route.group_id} is gone")
            continue
        kept.append(route)
    by_model: dict[str, list[Route]] = {}
    for route in kept:
        by_model.setdefault(route.model_name, []).append(route)
    tiers = {model: _tiers_of(rs) for model, rs in by_model.items()}
    asleep: dict[str, tuple[Group, ...]] = {}
    for model, rs in by_model.items():
        sleepy = {r.group_id: by_id[r.group_id] for r in rs
                  if r.group_id is not None and by_id[r.group_id].sleeping_tasks}
        if sleepy:
            asleep[model] = tuple(sleepy.values())
    models_of_group = _models_of_groups(groups, kept)
    return Snapshot(
        tiers=MappingProxyType(tiers),
        groups=MappingProxyType(by_id),
        group_of_endpoint=MappingProxyType(
            {g.endpoint_id: g.id for g in groups if g.endpoint_id is not None}),
        models_of_group=MappingProxyType({k: frozenset(v) for k, v in models_of_group.items()}),
        routes=tuple(kept),
        asleep=MappingProxyType(asleep),
        problems=tuple(notes),
        own_tiers=MappingProxyType({r.endpoint_id: _tiers_of([r]) for r in kept
                                    if r.external is not None and r.endpoint_id}),
    )


def _models_of_groups(groups: list[Group], routes: list[Route]) -> dict[str, set[str]]:
    """What a key of each group's endpoint may call (docs/gateway-scoping.md).

    A model that is some group's own ``model_name`` belongs to those groups: their keys, and
    only theirs, may call it, whatever other routes it has (a route lending another group's
    capacity to it widens who serves it, never who may call it). A model that is no group's
    own (an alias such as ``moving``) may be called by the keys of the groups its routes
    target."""
    owned = {g.model_name for g in groups}
    models: dict[str, set[str]] = {g.id: {g.model_name} for g in groups}
    for route in routes:
        if route.group_id is not None and route.model_name not in owned:
            models[route.group_id].add(route.model_name)
    return models


def _tiers_of(routes: list[Route]) -> tuple[Tier, ...]:
    by_priority: dict[int, list[Route]] = {}
    for route in sorted(routes, key=lambda r: (r.priority, r.version, r.id)):
        by_priority.setdefault(route.priority, []).append(route)
    return tuple(
        Tier(priority=p,
             weighted=tuple(r for r in rs if r.weight > 0),
             fallbacks=tuple(r for r in rs if r.weight == 0))
        for p, rs in sorted(by_priority.items())
    )
