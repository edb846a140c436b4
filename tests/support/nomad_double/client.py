"""The client side of allocations: task states and events as a Nomad client reports them.

Runners (and tests through `NomadDouble.set_alloc_status`) report what happened; this module
turns a report into the `AllocClientUpdate` write Nomad's client would make: `ClientStatus`,
`ClientDescription`, `TaskStates[task]` with `Events`, and `DeploymentStatus` for allocations
in a deployment. A failed allocation also gets an `alloc-failure` evaluation (rescheduling), a
terminal one frees capacity (blocked evaluations retry), and health changes feed the deployment.
"""

from __future__ import annotations

import copy
from typing import Any

from .errors import ApiError
from .gotypes import now_ns, rfc3339
from .objects import TERMINAL_CLIENT, new_eval, task_event, task_state
from .scheduler import Scheduler
from .state import Store

Json = dict[str, Any]
STATUSES = ("pending", "running", "complete", "failed", "lost")
DESCRIPTIONS = {"pending": "No tasks have started", "running": "Tasks are running",
                "complete": "All tasks have completed", "failed": "Failed tasks",
                "lost": "alloc is lost since its node is down"}


class ClientSide:
    """Applies client-reported allocation updates."""

    def __init__(self, store: Store, scheduler: Scheduler) -> None:
        self.store = store
        self.scheduler = scheduler

    def node(self, node_id: str) -> Json | None:
        return self.store.nodes.get(node_id)

    def received(self, allocs: list[Json]) -> None:
        """The client picked the allocations up: tasks pending with their first events."""
        txn = self.store.begin("AllocationUpdated")
        for alloc in allocs:
            updated = dict(self.store.allocs[alloc["ID"]])
            states = {}
            for task in _tasks(updated):
                states[task] = task_state([
                    task_event("Received", "Task received by client"),
                    task_event("Task Setup", "Building Task Directory")])
            updated.update(TaskStates=states, ClientDescription=DESCRIPTIONS["pending"],
                           ModifyTime=now_ns())
            self.store.put_alloc(txn, updated)
        self.store.commit(txn)

    def report(self, alloc_id: str, status: str, *, healthy: bool | None = None,
               events: list[Json | str] | None = None, exit_code: int | None = None,
               description: str | None = None) -> Json:
        """Apply one client update and its consequences; returns the updated allocation."""
        if status not in STATUSES:
            raise ValueError(f"unknown client status {status!r}; use one of {STATUSES}")
        old = self.store.allocs.get(alloc_id)
        if old is None:
            raise ApiError(404, "alloc not found")
        now = now_ns()
        alloc = dict(old)
        states = copy.deepcopy(old["TaskStates"]) or {}
        for task in _tasks(alloc):
            state = states.setdefault(task, task_state())
            _advance(state, status, old["ClientStatus"], alloc["DesiredStatus"], exit_code, now)
            for extra in events or []:
                state["Events"].append(_event(extra))
        alloc.update(TaskStates=states, ClientStatus=status, ModifyTime=now,
                     ClientDescription=description or DESCRIPTIONS[status])
        if alloc["DeploymentID"]:
            if healthy is None and status in ("failed", "lost"):
                healthy = False
            if healthy is not None:
                alloc["DeploymentStatus"] = {"Healthy": healthy, "Timestamp": rfc3339(now),
                                             "Canary": False, "ModifyIndex": 0}
        key = (alloc["Namespace"], alloc["JobID"])
        job = self.store.jobs.get(key)
        txn = self.store.begin("AllocationUpdated")
        if alloc["DeploymentStatus"] is not None:
            alloc["DeploymentStatus"]["ModifyIndex"] = txn.index
        self.store.put_alloc(txn, alloc)
        watch = self.scheduler.deployment_health(alloc, old, txn)
        failure_eval = None
        if status == "failed" and old["ClientStatus"] != "failed" and job is not None \
                and alloc["DesiredStatus"] == "run" and job["Type"] in ("service", "batch"):
            failure_eval = new_eval(job, "alloc-failure")
            self.store.put_eval(txn, failure_eval)
        terminal = self.store.commit(txn)
        if failure_eval is not None:
            self.scheduler.enqueue(failure_eval["ID"])
        if watch is not None:
            self.scheduler.watch_deployment(watch)
        node = self.store.nodes.get(alloc["NodeID"])
        if terminal and node is not None:
            self.scheduler.unblock(node["ComputedClass"])
        self.scheduler.run()
        return self.store.allocs[alloc_id]


def _event(extra: Json | str) -> Json:
    """A test-supplied event: a type name, or a partial TaskEvent object."""
    if isinstance(extra, str):
        return task_event(extra)
    event = task_event(str(extra.get("Type", "Generic")), str(extra.get("Message", "")),
                       details=extra.get("Details"))
    event.update({k: v for k, v in extra.items() if k not in ("Type", "Message", "Details")})
    if "DisplayMessage" not in extra:
        event["DisplayMessage"] = event["Message"]
    return event


def _tasks(alloc: Json) -> list[str]:
    job = alloc.get("Job") or {}
    for group in job.get("TaskGroups") or []:
        if group["Name"] == alloc["TaskGroup"]:
            return [t["Name"] for t in group.get("Tasks") or []]
    return []


def _advance(state: Json, status: str, before: str, desired: str, exit_code: int | None,
             now: int) -> None:
    events = state["Events"]
    if status == "running":
        if state["State"] != "running":
            events.append(task_event("Driver", "Downloading image"))
            events.append(task_event("Started", "Task started by client"))
        state.update(State="running", StartedAt=rfc3339(now))
    elif status == "failed":
        code = 1 if exit_code is None else exit_code
        events.append(task_event("Terminated", f"Exit Code: {code}",
                                 details={"exit_code": str(code), "signal": "0",
                                          "oom_killed": "false"}, ExitCode=code))
        events.append(task_event("Not Restarting",
                                 "Error was unrecoverable" if code else "Policy allows no "
                                 "restarts", details={"fails_task": "true"}, FailsTask=True))
        state.update(State="dead", Failed=True, FinishedAt=rfc3339(now))
    elif status in ("complete", "lost"):
        if desired != "run" and before in ("pending", "running"):
            events.append(task_event("Killing", "Sent interrupt. Waiting 5s before force "
                                     "killing", details={"kill_timeout": "5s"}))
            events.append(task_event("Killed", "Task successfully killed"))
        else:
            code = exit_code or 0
            events.append(task_event("Terminated", f"Exit Code: {code}",
                                     details={"exit_code": str(code), "signal": "0",
                                              "oom_killed": "false"}, ExitCode=code))
        state.update(State="dead", FinishedAt=rfc3339(now))


def is_terminal(status: str) -> bool:
    return status in TERMINAL_CLIENT
