"""Nomad allocations -> what a task row should say (pure; no I/O).

An inference job has one group, ``engine``, whose allocation index N is the task of rank N
(allocation names read ``<job>.engine[N]``; a rescheduled allocation keeps its index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bridge.domain.status import TaskStatus

_NAME = re.compile(r"\[(\d+)\]$")
PORT_LABEL = "http"
TASK_NAME = "engine"
TERMINAL = frozenset({"complete", "failed", "lost"})


@dataclass(frozen=True, slots=True)
class ObservedAlloc:
    alloc_id: str
    job_id: str
    index: int
    node_id: str | None
    node_name: str | None
    client_status: str
    desired_status: str
    healthy: bool | None  # deployment health; None = not decided (or no deployment)
    address: str | None  # host:port of the engine's http port
    device_ids: tuple[str, ...]
    last_event: str  # the newest task event, in Nomad's words
    create_index: int
    preempted_by: str = ""  # the allocation that preempted this one (docs/gpu-sharing.md)

    @property
    def live(self) -> bool:
        return self.desired_status == "run" and self.client_status not in TERMINAL


def alloc_index(name: str) -> int | None:
    match = _NAME.search(name or "")
    return int(match.group(1)) if match else None


def parse_alloc(alloc: dict[str, Any]) -> ObservedAlloc | None:
    """None for an allocation that is not one of our engine replicas."""
    index = alloc_index(alloc.get("Name", ""))
    if index is None:
        return None
    resources = alloc.get("AllocatedResources") or {}
    address = None
    for port in (resources.get("Shared") or {}).get("Ports") or []:
        if port.get("Label") == PORT_LABEL and port.get("Value"):
            address = f"{port.get('HostIP') or '127.0.0.1'}:{port['Value']}"
    devices: list[str] = []
    task_res = (resources.get("Tasks") or {}).get(TASK_NAME) or {}
    for group in task_res.get("Devices") or []:
        devices.extend(group.get("DeviceIDs") or [])
    deployment = alloc.get("DeploymentStatus") or {}
    return ObservedAlloc(
        alloc_id=alloc["ID"], job_id=alloc.get("JobID", ""), index=index,
        node_id=alloc.get("NodeID") or None, node_name=alloc.get("NodeName") or None,
        client_status=alloc.get("ClientStatus", "pending"),
        desired_status=alloc.get("DesiredStatus", "run"),
        healthy=deployment.get("Healthy"), address=address, device_ids=tuple(devices),
        last_event=_last_event(alloc), create_index=int(alloc.get("CreateIndex") or 0),
        preempted_by=alloc.get("PreemptedByAllocation") or "",
    )


def pick_current(allocs: list[ObservedAlloc]) -> ObservedAlloc | None:
    """The allocation that speaks for a rank: the newest live one, else the newest."""
    if not allocs:
        return None
    live = [a for a in allocs if a.live]
    return max(live or allocs, key=lambda a: a.create_index)


def task_status_for(a: ObservedAlloc) -> tuple[TaskStatus, str]:
    """Map an allocation to a task status and a reason a person can read."""
    where = f" on {a.node_name or a.node_id}" if (a.node_name or a.node_id) else ""
    if a.desired_status == "evict" and a.preempted_by:
        # preempted: nobody here asked it to stop, so it is pending again at once (stopping
        # leads only to completed or failed) and waits for room
        why = (f"preempted{where} by a higher-priority service (Nomad allocation "
               f"{a.preempted_by[:8]}) that needed its GPU")
        if a.client_status in ("pending", "running"):
            return TaskStatus.PENDING, f"{why}; Nomad is stopping it, then it waits for a GPU"
        return TaskStatus.PENDING, f"{why}; it waits until a GPU is free"
    if a.desired_status in ("stop", "evict") and a.client_status in ("pending", "running"):
        return TaskStatus.STOPPING, f"Nomad is stopping it{where}"
    if a.client_status == "pending":
        detail = f": {a.last_event}" if a.last_event else ""
        return TaskStatus.SCHEDULED, f"placed{where}, starting{detail}"
    if a.client_status == "running":
        if a.healthy is False:
            return TaskStatus.STARTING, f"running{where} but its health check is failing"
        if a.healthy is None and a.last_event and "Started" not in a.last_event:
            return TaskStatus.STARTING, f"starting{where}: {a.last_event}"
        return TaskStatus.RUNNING, f"running{where}"
    if a.client_status == "failed":
        return TaskStatus.FAILED, f"failed{where}: {a.last_event or 'the engine exited'}"
    if a.client_status == "complete":
        return TaskStatus.COMPLETED, f"stopped{where}"
    # lost / unknown: the node went away; Nomad reschedules the allocation
    return TaskStatus.PENDING, f"node{where} is unreachable ({a.client_status}); Nomad reschedules"


def _last_event(alloc: dict[str, Any]) -> str:
    state = (alloc.get("TaskStates") or {}).get(TASK_NAME) or {}
    events = state.get("Events") or []
    if not events:
        return ""
    last = max(events, key=lambda e: e.get("Time") or 0)
    text = last.get("DisplayMessage") or last.get("Message") or ""
    kind = last.get("Type", "")
    exit_code = (last.get("Details") or {}).get("exit_code")
    if kind == "Terminated" and exit_code not in (None, ""):
        return f"Terminated with exit code {exit_code}" + (f" ({text})" if text else "")
    return f"{kind}: {text}" if text and kind else (text or kind)
