"""The reconcile loop: resync, then follow Nomad's event stream; registrations on the side.

* resync: every group from the database, every ``hf-`` job and allocation from Nomad,
  decide(full=True) (orphan jobs are purged), apply. Run at start, after the event stream
  breaks or ends (a gap is possible then), and every ``resync_seconds`` as a safety net.
* follow: the event stream from the resync's index; each batch of events names jobs, which
  are re-read and decided alone.
* registration worker: groups that need a job (new, or Nomad was down, or the job vanished)
  are queued; a transient Nomad failure re-queues them with backoff, so nothing is lost.

Only one bridge replica reconciles at a time (a PostgreSQL advisory lock).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

from bridge.background import cancel_all
from bridge.errors import BridgeError, NomadUnavailable
from bridge.nomad.allocations import parse_alloc
from bridge.nomad.client import NomadClient
from bridge.nomad.explain import explain_evaluations
from bridge.placement.nomad.apply import apply_changes, load_groups
from bridge.placement.nomad.events import JOB_PREFIX, alloc_of, job_of, jobs_named
from bridge.placement.nomad.placer import Placer
from bridge.placement.nomad.plan import GroupRow, JobView, Plan, decide
from bridge.storage.db import Database, try_leadership

log = logging.getLogger(__name__)
LEADER_KEY = 0x4846_5245  # "HFRE"
TOPICS = ["Allocation", "Evaluation", "Job", "Deployment"]


class Reconciler:
    def __init__(
        self, db: Database, nomad: NomadClient, placer: Placer, *,
        resync_seconds: float = 60.0, debounce_seconds: float = 0.2,
    ) -> None:
        self.db = db
        self.nomad = nomad
        self.placer = placer
        self.resync_seconds = resync_seconds
        self.debounce = debounce_seconds
        self._register: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._delays: dict[str, float] = {}  # group id -> backoff of its next registration
        self.resyncs = 0  # how many full resyncs ran (for tests and metrics)
        # What Nomad said, kept between resyncs and updated from the event stream (whose
        # Allocation events carry the whole allocation), so following events costs no
        # re-reads: job -> allocation id -> allocation, and job -> job stub.
        self._allocs: dict[str, dict[str, dict[str, Any]]] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._jobs_changed: set[str] = set()  # Job events: re-read these stubs

    # ------------------------------------------------------------------ lifecycle

    def start(self, registration_workers: int = 8) -> None:
        # Registering is two round trips to Nomad (parse, register) per group: several run
        # at once so a burst of creates is placed in seconds, not one after the other.
        self._tasks = [asyncio.create_task(self._run(), name="reconciler")] + [
            asyncio.create_task(self._registrations(), name=f"registrations-{i}")
            for i in range(registration_workers)]

    async def stop(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []

    def request_registration(self, group_id: str) -> None:
        """Ask for a group's job to be registered soon (called after a create commits)."""
        if group_id not in self._queued:
            self._queued.add(group_id)
            self._register.put_nowait(group_id)

    # ------------------------------------------------------------------ main loop

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            lock = None
            try:
                lock = await try_leadership(self.db.url, LEADER_KEY)
                if lock is None:
                    await asyncio.sleep(5)  # another bridge replica reconciles
                    continue
                while True:
                    index = await self.resync()
                    await self._follow(index)
                    backoff = 1.0
            except Exception as exc:
                log.warning("reconcile interrupted; resyncing", extra={"error": repr(exc)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                if lock is not None:
                    await lock.close()

    async def resync(self) -> int:
        """One full pass; returns the Nomad index to follow events from."""
        groups = await load_groups(self.db)
        listed = await self.nomad.jobs(JOB_PREFIX)
        allocs = await self.nomad.allocations()
        by_job: dict[str, list[dict[str, Any]]] = {}
        for alloc in allocs.value:
            by_job.setdefault(alloc.get("JobID", ""), []).append(alloc)
        stubs = {j["ID"]: j for j in listed.value if j["ID"].startswith(JOB_PREFIX)}
        self._jobs = dict(stubs)
        self._allocs = {job: {a["ID"]: a for a in found} for job, found in by_job.items()
                        if job.startswith(JOB_PREFIX)}
        self._jobs_changed.clear()
        views: dict[str, JobView] = {}
        for job_id, stub in stubs.items():
            view = await self._view(job_id, stub, by_job.get(job_id, []), groups)
            if view is not None:
                views[job_id] = view
        plan = decide(groups, views, full=True)
        await self._apply(plan)
        self.resyncs += 1
        return max(listed.index, allocs.index)

    async def refresh(self, job_ids: Iterable[str], *, again_if_stale: bool = True) -> Plan:
        """Re-read some jobs and decide for their groups alone.

        A write skipped because its row changed meanwhile (an operator's stop, say) means
        the decision was made on old rows: decide once more on fresh ones, or the row would
        wait for the next event or resync.
        """
        ids = sorted(set(job_ids))
        groups = await load_groups(self.db, job_ids=ids)
        gate = asyncio.Semaphore(8)
        cached = again_if_stale  # the second look reads Nomad itself

        async def one(job_id: str) -> JobView | None:
            async with gate:
                stub = self._jobs.get(job_id) if cached else None
                if stub is None or job_id in self._jobs_changed:
                    self._jobs_changed.discard(job_id)
                    stub = await self.nomad.job(job_id)
                    if stub is None:
                        self._jobs.pop(job_id, None)
                        self._allocs.pop(job_id, None)
                        return None
                    self._jobs[job_id] = stub
                if cached:
                    # Every allocation since the resync came through the stream, so a job
                    # with none known has none (a new job's first event precedes them).
                    allocs = list(self._allocs.get(job_id, {}).values())
                else:
                    allocs = await self.nomad.allocations_of(job_id)
                    self._allocs[job_id] = {a["ID"]: a for a in allocs}
                return await self._view(job_id, stub, allocs, groups)

        found = await asyncio.gather(*(one(j) for j in ids))
        views = {v.job_id: v for v in found if v is not None}
        plan = decide(groups, views, full=False)
        if await self._apply(plan) and again_if_stale:
            return await self.refresh(ids, again_if_stale=False)
        return plan

    async def _follow(self, index: int) -> None:
        """Follow events until the next resync is due or the stream ends.

        One task reads the stream into a queue, so waiting out the debounce never cancels
        the stream itself (a cancelled async generator is closed for good).
        """
        frames: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=10_000)
        reader = asyncio.create_task(self._read(index + 1, frames), name="nomad-events")
        resync_at = time.monotonic() + self.resync_seconds
        pending: set[str] = set()
        deadline: float | None = None
        try:
            while True:
                now = time.monotonic()
                wake_at = min(resync_at, deadline) if deadline is not None else resync_at
                try:
                    frame = await asyncio.wait_for(frames.get(), timeout=max(0.0, wake_at - now))
                except TimeoutError:
                    if pending:
                        await self.refresh(pending)
                    pending, deadline = set(), None
                    if time.monotonic() >= resync_at:
                        return
                    continue
                if frame is None:
                    break  # Nomad closed the stream: events may have been missed
                pending |= self._absorb(frame)
                if pending and deadline is None:
                    deadline = time.monotonic() + self.debounce
        finally:
            await cancel_all([reader])
        if pending:
            await self.refresh(pending)

    def _absorb(self, frame: dict[str, Any]) -> set[str]:
        """Fold one batch of events into what we know of Nomad; return the jobs touched."""
        for event in frame.get("Events") or []:
            alloc = alloc_of(event)
            if alloc is not None:
                self._allocs.setdefault(alloc["JobID"], {})[alloc["ID"]] = alloc
            elif event.get("Topic") == "Job" and isinstance(event.get("Key"), str):
                stub = job_of(event)
                if stub is None:
                    self._jobs_changed.add(event["Key"])  # purged or no payload: re-read
                else:
                    # A Job event carries the job as of its index: reading it back cost a
                    # GET per registration, the bridge's largest Nomad cost after the
                    # registration itself (bench/placement.py).
                    self._jobs[event["Key"]] = stub
                    self._jobs_changed.discard(event["Key"])
        return jobs_named(frame)

    async def _read(self, index: int, frames: asyncio.Queue[dict[str, Any] | None]) -> None:
        try:
            async for frame in self.nomad.events(index=index, topics=TOPICS):
                await frames.put(frame)
        except BridgeError as exc:
            log.warning("event stream broke", extra={"error": str(exc)})
        finally:
            await frames.put(None)

    async def _view(
        self, job_id: str, stub: dict[str, Any], allocs: list[dict[str, Any]],
        groups: list[GroupRow],
    ) -> JobView | None:
        meta = stub.get("Meta") or {}
        owner = meta.get("hf_task_group_id")
        if owner is None and not any(g.job_id == job_id for g in groups):
            full = await self.nomad.job(job_id)  # list stubs may lack Meta
            owner = ((full or {}).get("Meta") or {}).get("hf_task_group_id")
            if owner is None:
                return None  # an hf- job HeteroFlow did not make: leave it alone
        parsed = [a for a in (parse_alloc(x) for x in allocs) if a is not None]
        stopped = bool(stub.get("Stop")) or stub.get("Status") == "dead"
        why = None
        group = next((g for g in groups if g.job_id == job_id), None)
        if group is not None and not stopped:
            placed = {a.index for a in parsed if a.live}
            if {t.rank for t in group.tasks} - placed:
                why = explain_evaluations(await self.nomad.job_evaluations(job_id))
        return JobView(job_id=job_id, group_id=owner, stopped=stopped, allocs=tuple(parsed),
                       why_pending=why)

    async def _apply(self, plan: Plan) -> int:
        """Carry out a plan; returns how many writes were skipped as stale."""
        applied = await apply_changes(self.db, plan)
        for group_id in plan.register:
            self.request_registration(group_id)
        for job_id, owner in plan.purge:
            # decide() saw the groups a moment ago; a group created since then owns its job.
            if owner and await load_groups(self.db, group_ids=[owner]):
                continue
            log.warning("purging orphan job", extra={"job": job_id, "task_group_id": owner})
            try:
                await self.placer.purge(job_id)
            except BridgeError as exc:
                log.warning("purge failed", extra={"job": job_id, "error": str(exc)})
        return applied.stale

    # ------------------------------------------------------------------ registrations

    async def _registrations(self) -> None:
        delays = self._delays
        while True:
            group_id = await self._register.get()
            self._queued.discard(group_id)
            try:
                await self.placer.place(group_id)
                delays.pop(group_id, None)
            except NomadUnavailable:
                delay = min(delays.get(group_id, 0.5) * 2, 30.0)
                delays[group_id] = delay
                asyncio.get_running_loop().call_later(delay, self.request_registration,
                                                      group_id)
            except Exception as exc:
                log.warning("registration failed", extra={"task_group_id": group_id,
                                                          "error": repr(exc)})

