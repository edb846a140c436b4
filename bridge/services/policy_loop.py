"""The policy loop: autoscaling, schedule windows and idle sleep, one round every
``autoscale_interval_seconds`` on the bridge replica that holds the advisory lock.

Each round: load (the managed groups with their tasks, the gateways' summed counters, the
nodes' GPU figures, the last states) -> decide per group (bridge/domain/policy_plan.py, pure)
-> apply (scale through operations.scale_group, hence the placement port, on Nomad or here;
sleep and wake through the agents) -> save every sentence to service_policy_state, and a
move to the audit log too. It is the one writer of replica counts besides a person's scale
(docs/policies.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from bridge.agents.client import AgentClient
from bridge.background import cancel_all
from bridge.crypto import SecretBox
from bridge.domain import policy_plan as plan
from bridge.domain.measure import ENGINE_METRICS, Replica, sample
from bridge.domain.models import Task, TaskGroup
from bridge.domain.status import TaskStatus
from bridge.domain.windows import parse_schedule, phase
from bridge.errors import BridgeError
from bridge.placement.port import PlacementPort
from bridge.services.context import Actor
from bridge.services.operations import begin_drain, scale_group
from bridge.services.task_ops import sleep_task, wake_task
from bridge.settings import BridgeSettings
from bridge.storage import audit
from bridge.storage import policies as rows
from bridge.storage.db import Database, try_leadership
from bridge.storage.policies import PolicyState

log = logging.getLogger("bridge.policies")
LEADER_KEY = 0x4846_4153  # "HFAS"
SYSTEM = Actor(None, None)
SETTLE_S = 4.0
Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


class PolicyLoop:
    def __init__(self, db: Database, placement: PlacementPort | None, agents: AgentClient,
                 secrets: SecretBox, settings: BridgeSettings,
                 clock: Clock = wall_clock) -> None:
        self.db, self.placement, self.agents, self.secrets = db, placement, agents, secrets
        self.interval = settings.autoscale_interval_seconds
        self.window_s = settings.autoscale_window_seconds
        self.fresh_s = settings.signals_fresh_seconds
        self.drain_s = settings.scale_down_drain_seconds
        # agents read engines every 10 s and send them with the heartbeat (30 s)
        self.engine_fresh_s = 3.0 * 30
        self.clock = clock
        self.memory: dict[str, plan.Memory] = {}
        self.drains: dict[str, tuple[float, int, str]] = {}  # group -> (since, to, why)
        self._tasks: list[asyncio.Task[None]] = []
        # Decisions not to act, for the audit log: one entry each time the kind of "no"
        # changes ("not scaled up", "steady", ...), not every round (that is the status).
        self._notes: list[tuple[str, str]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(), name="policies")]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []

    async def _run(self) -> None:
        while True:
            lock = None
            try:
                lock = await try_leadership(self.db.url, LEADER_KEY)
                if lock is None:
                    self.memory.clear()  # another replica leads; start afresh if we take over
                    await asyncio.sleep(max(self.interval, 5.0))
                    continue
                while True:
                    await self.round()
                    await asyncio.sleep(self.interval)
            except Exception as exc:  # one bad round must not end the loop
                log.warning("policy round failed", extra={"error": repr(exc)})
                await asyncio.sleep(self.interval)
            finally:
                if lock is not None:
                    await lock.close()

    async def round(self) -> list[PolicyState]:
        """One pass over every managed group; returns the states it saved."""
        async with self.db.transaction() as conn:
            groups = await rows.managed_groups(conn)
            if not groups:
                return []
            loads = await rows.gateway_loads(conn, self.fresh_s)
            gateways = await rows.fresh_gateways(conn, self.fresh_s)
            states = await rows.all_states(conn)
            needs_nodes = any(g.auto_scale and (g.scale_policy or {}).get("metric") in (
                "gpu_utilization", "cpu") for g in groups)
            nodes = await rows.node_gpus(conn) if needs_nodes else {}
            engine_groups = [g.id for g in groups if g.auto_scale and (
                g.scale_policy or {}).get("metric") in ENGINE_METRICS]
            readings = (await rows.engine_metrics(conn, engine_groups, self.engine_fresh_s)
                        if engine_groups else {})
        now_dt = self.clock()
        now = now_dt.timestamp()
        live = {g.id for g in groups}
        for gid in [g for g in self.memory if g not in live]:
            del self.memory[gid]
        saved: list[PolicyState] = []
        for group in groups:
            state = states.get(group.id) or PolicyState(group.id)
            new = await self._one(group, state, now_dt, now, loads.get(group.id), gateways,
                                  nodes, readings)
            if new != state:
                saved.append(new)
        notes, self._notes = self._notes, []
        async with self.db.transaction() as conn:
            await rows.save_states(conn, saved)
            for group_id, sentence in notes:
                await audit.append(conn, actor=None, action="task_group.autoscale_hold",
                                   object_type="task_group", object_id=group_id,
                                   details={"reason": sentence})
        return saved

    async def _one(self, group: TaskGroup, state: PolicyState, now_dt: datetime, now: float,
                   load: rows.GatewayLoad | None, gateways: int,
                   nodes: dict[str, tuple[list[dict[str, object]], dict[str, object]]],
                   readings: dict[str, tuple[dict[str, float] | None, str]]) -> PolicyState:
        mem = self.memory.setdefault(group.id, plan.Memory())
        schedule = parse_schedule(group.schedule_window)
        key = json.dumps(group.schedule_window, sort_keys=True)
        before = state.window_inside if mem.schedule_key == key or mem.phase is None else None
        if schedule is not None and (mem.schedule_key != key or mem.phase is None or (
                mem.phase.next_change is not None and now_dt >= mem.phase.next_change)):
            mem.phase, mem.schedule_key = phase(schedule, now_dt), key  # cached until it ends
        current = mem.phase if schedule is not None else None
        new = replace(state, window_inside=current.inside if current else None,
                      window_note=current.words if current else "",
                      next_transition=current.next_change if current else None)
        to_sleep, to_wake = plan.window_actions(group, schedule, before, current)
        for task_id in to_sleep:
            await self._act(sleep_task, task_id, "window")
        for task_id in to_wake:
            await self._act(wake_task, task_id, "window")
        if to_sleep or to_wake:
            return new
        if group.status.value not in ("running", "scheduling"):
            return new
        draining = [t for t in group.tasks if t.status is TaskStatus.STOPPING]
        if draining and group.id in self.drains:
            return await self._drain(group, draining, new, now_dt, now)
        lo, hi, _source = plan.bounds(group, schedule, current)
        running = [t for t in group.tasks if t.status is TaskStatus.RUNNING]
        replicas = [Replica(t.id, t.node_id, tuple((t.gpu_id or "").split(",")) if t.gpu_id
                            else (), *readings.get(t.id, (None, "")))
                    for t in running]
        if group.auto_scale:
            s = sample(str((group.scale_policy or {}).get("metric", "")), replicas,
                       gateways=gateways, inflight=load.inflight if load else 0,
                       waiting=load.waiting if load else 0, nodes=nodes)
            value = plan.average(mem, now, self.window_s, s.value)
            last = state.last_scaled_at.timestamp() if state.last_scaled_at else None
            d = plan.scale_decision(group, value, s.missing, lo, hi, mem, now, last)
            if d.replicas is not None and lo <= len(group.tasks) and (
                    not hi or len(group.tasks) <= hi):
                # Only a move asks placement (one Nomad call) whether a rollout runs.
                rollout = await self._rollout(group)
                if rollout:
                    d = plan.scale_decision(group, value, s.missing, lo, hi, mem, now, last,
                                            rollout)
            mem.high_since, mem.low_since = d.high_since, d.low_since
            # decided_at says since when the sentence holds; an unchanged one is not
            # written again (a steady round of 1,000 services writes nothing).
            if d.reason != state.decision:
                new = replace(new, decision=d.reason, decided_at=now_dt)
                if d.replicas is None and _kind(d.reason) != _kind(state.decision):
                    self._notes.append((group.id, d.reason))
            if d.replicas is not None and d.replicas < len(group.tasks) and self.placement \
                    and not self.placement.ends_removed_ranks(group):
                removed = [t for t in group.tasks if t.rank >= d.replicas]
                await begin_drain(self.db, removed, f"draining: {d.reason}", SYSTEM)
                self.drains[group.id] = (now, d.replicas, d.reason)
                new = replace(new, decision=f"draining {len(removed)} replica(s) first: "
                                            f"{d.reason}", decided_at=now_dt)
            elif d.replicas is not None:
                new = await self._scale(group, d.replicas, d.reason, new, now_dt)
        elif len(group.tasks) < lo or (hi and len(group.tasks) > hi):
            target = lo if len(group.tasks) < lo else hi
            why = f"scaled {len(group.tasks)} -> {target}: the schedule window's bounds"
            new = await self._scale(group, target, why, replace(new, decision=why,
                                                                decided_at=now_dt), now_dt)
        busy = bool(load and (load.inflight or load.waiting))
        last_req = load.last_request_at.timestamp() if load and load.last_request_at else None
        idle, note = plan.idle_check(group, mem, now, gateways=gateways, busy=busy,
                                     last_request=last_req)
        for task_id in idle:
            await self._act(sleep_task, task_id, "idle")
        return replace(new, idle_note=note)

    async def _drain(self, group: TaskGroup, draining: list[Task], state: PolicyState,
                     now_dt: datetime, now: float) -> PolicyState:
        """Finish a scale-down once the draining replicas serve nothing (or time is up)."""
        started, replicas, why = self.drains[group.id]
        async with self.db.transaction() as conn:
            left = await rows.backend_inflight(conn, [t.id for t in draining], self.fresh_s)
        waited = now - started
        # the gateways re-read tasks every second and publish every 2 s: a zero is only
        # believed once they had time to stop sending there and to say so
        if (left or waited < SETTLE_S) and waited < self.drain_s:
            return replace(state, decision=f"draining: {left} request(s) still in flight on "
                                           f"the replica(s) being removed, {waited:.0f} of "
                                           f"{self.drain_s:g} s ({why})", decided_at=now_dt)
        del self.drains[group.id]
        done = f"{why}; drained in {waited:.0f} s" + (
            f", {left} request(s) cut at the drain limit" if left else "")
        return await self._scale(group, replicas, done, replace(state, decision=done,
                                                                 decided_at=now_dt), now_dt)

    async def _scale(self, group: TaskGroup, replicas: int, why: str, state: PolicyState,
                     now_dt: datetime) -> PolicyState:
        try:
            await scale_group(self.db, self.placement, group.id, replicas, SYSTEM, reason=why)
        except BridgeError as exc:
            # A deployment in progress, a placement that refuses: said, and tried next round.
            return replace(state, decision=f"wanted {len(group.tasks)} -> {replicas} "
                                           f"({why}) but could not: {exc.message}")
        log.info("autoscaled", extra={"group": group.name, "reason": why})
        self.memory[group.id].samples.clear()  # the new count changes the per-replica value
        return replace(state, last_scaled_at=now_dt)

    async def _rollout(self, group: TaskGroup) -> str:
        if self.placement is None:
            return ""
        try:
            return await self.placement.rollout(group)
        except BridgeError as exc:  # not knowing is reason enough not to move now
            return f"whether a rollout runs is unknown ({exc.message})"

    async def _act(self, verb: Callable[..., object], task_id: str, why: str) -> None:
        try:
            await verb(self.db, self.agents, self.secrets, task_id, SYSTEM)  # type: ignore[misc]
        except BridgeError as exc:
            log.warning("policy action failed", extra={"task_id": task_id, "why": why,
                                                       "error": exc.message})


def _kind(sentence: str) -> str:
    """What kind of decision a sentence is: the words before its numbers."""
    return sentence.split(":", 1)[0]
