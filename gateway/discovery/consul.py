"""Consul discovery: a group's backends are the passing instances of its Consul service.

Nomad registers each group's service as ``hf-<group name>`` with tags ``heteroflow``,
``tg=<group id>``, ``model=...``, ``engine=...``. For every routed group one blocking query
on ``/v1/health/service/hf-<name>`` runs; Consul answers as soon as an instance or a check
changes, so the pool follows a health change in well under a second.

Every instance is listed, passing or not, with a verdict read from its checks (worst
wins): ``passing``; ``refused`` when a check says the connection was refused; ``slow``
when it timed out; else ``failing``. A check may time out under load while requests
succeed, so the pool treats ``slow`` as busy rather than dead, and routes to ejected
instances rather than refuse everything (see ``pool``).

While Consul is unreachable the last known pool stays in place (routing to instances that
were passing beats refusing everything) and the outage shows in health and metrics.
Instances whose Nomad allocation belongs to a task the bridge reports sleeping are left
out: an engine asleep may still pass its check, but cannot serve.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import aiohttp

from gateway.discovery.base import DiscoveryContext, routed_groups
from gateway.domain import ASLEEP, Group, Snapshot
from gateway.pool import FAILING, PASSING, REFUSED, SLOW, Member

log = logging.getLogger(__name__)

# Nomad's registration ids embed the allocation id: _nomad-task-<alloc uuid>-<task>-...
_ALLOC_IN_ID = re.compile(r"^_nomad-task-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                          r"[0-9a-f]{12})-")
_MIN_LOOP_S = 0.05  # rate limit on a watch loop that Consul answers at once


class ConsulDiscovery:
    def __init__(self, ctx: DiscoveryContext) -> None:
        self._ctx = ctx
        settings = ctx.settings
        assert settings.consul_http_addr is not None
        addr = settings.consul_http_addr
        self._base = addr if "://" in addr else f"http://{addr}"
        self._headers = {}
        if settings.consul_http_token is not None:
            self._headers["X-Consul-Token"] = settings.consul_http_token.get_secret_value()
        self._wait_s = settings.consul_wait_s
        self._groups: dict[str, Group] = {}
        self._watches: dict[str, tuple[str, asyncio.Task[None]]] = {}  # group -> (service, task)
        self._last: dict[str, list[dict[str, Any]]] = {}  # group -> last entries from Consul
        self.reachable = True
        self.last_error = ""
        self.last_contact = 0.0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for _, task in self._watches.values():
            task.cancel()
        self._watches.clear()

    def update(self, snapshot: Snapshot) -> None:
        groups = routed_groups(snapshot)
        self._groups = groups
        for group_id in list(self._watches):
            group = groups.get(group_id)
            if group is None or self._watches[group_id][0] != group.service_name:
                self._watches.pop(group_id)[1].cancel()
                self._last.pop(group_id, None)
                self._ctx.pool.drop(group_id)
        loop = asyncio.get_running_loop()
        for group_id, group in groups.items():
            if group_id not in self._watches:
                task = loop.create_task(self._watch(group_id, group.service_name))
                self._watches[group_id] = (group.service_name, task)
            elif group_id in self._last:
                # Sleeping tasks may have changed in the database; refilter what we know.
                self._apply(group_id, self._last[group_id])

    def health(self) -> dict[str, object]:
        return {"mode": "consul", "ok": self.reachable, "address": self._base,
                "error": self.last_error or None, "watches": len(self._watches),
                "last_contact_s_ago": (round(time.monotonic() - self.last_contact, 3)
                                       if self.last_contact else None)}

    async def _watch(self, group_id: str, service: str) -> None:
        index = 0
        backoff = 0.5
        url = f"{self._base}/v1/health/service/{service}"
        timeout = aiohttp.ClientTimeout(total=self._wait_s + self._wait_s / 16 + 10,
                                        connect=5)
        while True:
            started = time.monotonic()
            params = {"index": str(index), "wait": f"{self._wait_s:g}s"} if index else {}
            try:
                async with self._ctx.session.get(url, params=params, headers=self._headers,
                                                 timeout=timeout) as resp:
                    if resp.status != 200:
                        text = (await resp.text())[:200]
                        raise ConsulUnavailable(f"Consul answered {resp.status}: {text}")
                    entries = await resp.json(content_type=None)
                    new_index = int(resp.headers.get("X-Consul-Index", "0"))
            except (aiohttp.ClientError, TimeoutError, ValueError, ConsulUnavailable) as exc:
                self._outage(service, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.5
            self._contact()
            # Consul's rules: start over when the index goes backwards; never block on 0.
            index = new_index if new_index >= index else 0
            index = max(index, 1)
            if isinstance(entries, list):
                self._last[group_id] = entries
                self._apply(group_id, entries)
            elapsed = time.monotonic() - started
            if elapsed < _MIN_LOOP_S:
                await asyncio.sleep(_MIN_LOOP_S - elapsed)

    def _apply(self, group_id: str, entries: list[dict[str, Any]]) -> None:
        group = self._groups.get(group_id)
        if group is None:
            return
        by_alloc = {t.alloc_id: t for t in group.tasks if t.alloc_id}
        members: list[Member] = []
        for entry in entries:
            member = _member(entry, group, by_alloc)
            if member is not None:
                members.append(member)
        self._ctx.pool.set_members(group_id, members)

    def _outage(self, service: str, exc: BaseException) -> None:
        reason = str(exc) or type(exc).__name__
        if self.reachable:
            log.warning("consul unreachable; keeping the last known backends",
                        extra={"service": service, "reason": reason})
        self.reachable = False
        self.last_error = reason

    def _contact(self) -> None:
        if not self.reachable:
            log.info("consul reachable again")
        self.reachable = True
        self.last_error = ""
        self.last_contact = time.monotonic()


class ConsulUnavailable(Exception):
    """Consul answered, but not with the health listing."""


def _member(entry: dict[str, Any], group: Group, by_alloc: dict[str, Any]) -> Member | None:
    service = entry.get("Service") or {}
    node = entry.get("Node") or {}
    tags = service.get("Tags") or []
    group_tags = [t for t in tags if isinstance(t, str) and t.startswith("tg=")]
    if group_tags and f"tg={group.id}" not in group_tags:
        return None  # same name, another group (a deleted one's leftover job)
    address = service.get("Address") or node.get("Address")
    port = service.get("Port")
    if not address or not isinstance(port, int) or port <= 0:
        return None
    service_id = str(service.get("ID") or f"{address}:{port}")
    task_id = None
    match = _ALLOC_IN_ID.match(service_id)
    if match:
        task = by_alloc.get(match.group(1))
        if task is not None:
            if task.status in ASLEEP:
                return None
            task_id = task.id
    host = f"[{address}]" if ":" in address else address
    verdict, reason = check_verdict(entry.get("Checks") or [])
    return Member(backend_id=service_id, address=f"{host}:{port}", task_id=task_id,
                  verdict=verdict, reason=reason)


_RANK = {PASSING: 0, SLOW: 1, FAILING: 2, REFUSED: 3}


def check_verdict(checks: list[dict[str, Any]]) -> tuple[str, str]:
    """The worst of an instance's checks, as a pool verdict, and Consul's output for it."""
    worst, reason = PASSING, "passing"
    for check in checks:
        status = check.get("Status")
        if status == "passing":
            continue
        output = str(check.get("Output") or status)[:300]
        low = output.lower()
        if "connection refused" in low:
            verdict = REFUSED
        elif status == "warning" or "timeout" in low or "deadline exceeded" in low:
            verdict = SLOW  # a warning is Consul's own "not great, still serving"
        else:
            verdict = FAILING
        if _RANK[verdict] > _RANK[worst]:
            worst, reason = verdict, f"consul check {check.get('Name') or '?'}: {output}"
    return worst, reason
