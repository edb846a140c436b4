"""In-memory state store: Raft-like indexes, secondary indexes, change notification and events.

Every write happens inside a `Txn` that takes the next index (like one Raft apply). On commit
the touched tables get that index (for `X-Nomad-Index` and blocking queries), job statuses and
summaries are recomputed, and each changed object becomes an event whose `Type` is the message
type of the write (Nomad names events after the Raft message, e.g. `PlanResult`).
All access happens on the double's event loop, so no locking is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from dataclasses import dataclass, field
from typing import Any

from .events import Event, EventBroker
from .objects import TERMINAL_CLIENT, alloc_terminal, empty_group_summary

Json = dict[str, Any]
JobKey = tuple[str, str]
TABLES = ("jobs", "job_version", "job_summary", "allocs", "evals", "deployment", "nodes",
          "scaling_event", "acl_token")


@dataclass
class Usage:
    """Resources held on one node by its non-terminal allocations."""

    cpu: int = 0
    memory: int = 0
    disk: int = 0
    devices: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    allocs: dict[str, None] = field(default_factory=dict)


@dataclass
class Txn:
    index: int
    msg_type: str
    events: list[Event] = field(default_factory=list)
    tables: set[str] = field(default_factory=set)
    jobs: set[JobKey] = field(default_factory=set)
    terminal_allocs: list[Json] = field(default_factory=list)


class Store:
    """All cluster state of the double."""

    def __init__(self, broker: EventBroker) -> None:
        self.broker = broker
        # SchedulerConfiguration.PreemptionConfig.ServiceSchedulerEnabled (off by default, as
        # in Nomad; nomad.hcl turns it on)
        self.preempt_service = False
        self.index = 1
        self.table_index = dict.fromkeys(TABLES, 1)
        self.jobs: dict[JobKey, Json] = {}
        self.versions: dict[JobKey, list[Json]] = {}
        self.summaries: dict[JobKey, Json] = {}
        self.allocs: dict[str, Json] = {}
        self.allocs_by_job: dict[JobKey, dict[str, None]] = {}
        self.allocs_by_node: dict[str, dict[str, None]] = {}
        self.evals: dict[str, Json] = {}
        self.evals_by_job: dict[JobKey, dict[str, None]] = {}
        self.deployments: dict[str, Json] = {}
        self.deployments_by_job: dict[JobKey, dict[str, None]] = {}
        self.nodes: dict[str, Json] = {}
        self.usage: dict[str, Usage] = {}
        self.scaling_events: dict[JobKey, dict[str, list[Json]]] = {}
        self._changed = asyncio.Event()
        self._open: Txn | None = None
        self._candidates: dict[tuple[int, str, tuple[str, ...]], tuple[int, list[Json]]] = {}

    # -- reads -----------------------------------------------------------------------------

    def job_allocs(self, key: JobKey) -> list[Json]:
        return [self.allocs[a] for a in self.allocs_by_job.get(key, {})]

    def node_allocs(self, node_id: str) -> list[Json]:
        return [self.allocs[a] for a in self.allocs_by_node.get(node_id, {})]

    def job_evals(self, key: JobKey) -> list[Json]:
        return [self.evals[e] for e in self.evals_by_job.get(key, {})]

    def job_deployments(self, key: JobKey) -> list[Json]:
        """Newest first, as Nomad lists them."""
        found = [self.deployments[d] for d in self.deployments_by_job.get(key, {})]
        return sorted(found, key=lambda d: d["CreateIndex"], reverse=True)

    def latest_deployment(self, key: JobKey) -> Json | None:
        found = self.job_deployments(key)
        return found[0] if found else None

    def candidates(self, pool: str, datacenters: tuple[str, ...]) -> tuple[int, list[Json]]:
        """Nodes in the pool, and its ready+eligible nodes in these datacenters (ID order).

        Cached per nodes-table index: every evaluation asks, and nodes change rarely."""
        key = (self.table_index["nodes"], pool, datacenters)
        found = self._candidates.get(key)
        if found is None:
            if len(self._candidates) > 64:
                self._candidates.clear()
            in_pool = [n for n in self.nodes.values() if pool == "all" or n["NodePool"] == pool]
            ready = [n for n in in_pool if n["Status"] == "ready"
                     and n["SchedulingEligibility"] == "eligible"
                     and any(fnmatch.fnmatchcase(n["Datacenter"], p) for p in datacenters)]
            found = self._candidates[key] = (len(in_pool), sorted(ready, key=lambda n: n["ID"]))
        return found

    def max_index(self, *tables: str) -> int:
        return max(self.table_index[t] for t in tables)

    # -- writes ----------------------------------------------------------------------------

    def begin(self, msg_type: str) -> Txn:
        assert self._open is None, "nested transaction"
        self._open = Txn(self.index + 1, msg_type)
        return self._open

    def put_job(self, txn: Txn, job: Json, new_version: bool) -> None:
        key = (job["Namespace"], job["ID"])
        job["ModifyIndex"] = txn.index
        self.jobs[key] = job
        if new_version:
            versions = self.versions.setdefault(key, [])
            versions.insert(0, job)
            del versions[6:]
            txn.tables.add("job_version")
        if key not in self.summaries:
            self.summaries[key] = self._new_summary(job, txn.index)
            txn.tables.add("job_summary")
        txn.tables.add("jobs")
        txn.jobs.add(key)
        self._job_event(txn, job, deleted=False)

    def delete_job(self, txn: Txn, key: JobKey) -> None:
        job = self.jobs.pop(key, None)
        if job is None:
            return
        self.versions.pop(key, None)
        self.summaries.pop(key, None)
        self.scaling_events.pop(key, None)
        txn.tables.update(("jobs", "job_version", "job_summary"))
        self._job_event(txn, job, deleted=True)

    def put_eval(self, txn: Txn, evaluation: Json) -> None:
        key = (evaluation["Namespace"], evaluation["JobID"])
        if evaluation["ID"] not in self.evals:
            evaluation["CreateIndex"] = txn.index
        evaluation["ModifyIndex"] = txn.index
        self.evals[evaluation["ID"]] = evaluation
        self.evals_by_job.setdefault(key, {})[evaluation["ID"]] = None
        queued = evaluation.get("QueuedAllocations")
        summary = self.summaries.get(key)
        if queued is not None and summary is not None and evaluation["Status"] != "blocked":
            for group, count in queued.items():
                if group in summary["Summary"]:
                    summary["Summary"][group]["Queued"] = count
            summary["ModifyIndex"] = txn.index
            txn.tables.add("job_summary")
        txn.tables.add("evals")
        txn.jobs.add(key)
        filter_keys = [evaluation["JobID"], evaluation["DeploymentID"]]
        txn.events.append(Event.build("Evaluation", self._type(txn, "EvaluationUpdated"),
                                      evaluation["ID"], evaluation["Namespace"], filter_keys,
                                      txn.index, {"Evaluation": evaluation}))

    def put_alloc(self, txn: Txn, alloc: Json) -> None:
        alloc_id = alloc["ID"]
        old = self.allocs.get(alloc_id)
        if old is None:
            alloc["CreateIndex"] = txn.index
            alloc["AllocModifyIndex"] = txn.index
        alloc["ModifyIndex"] = txn.index
        self._unaccount(old)
        self.allocs[alloc_id] = alloc
        key = (alloc["Namespace"], alloc["JobID"])
        self.allocs_by_job.setdefault(key, {})[alloc_id] = None
        self.allocs_by_node.setdefault(alloc["NodeID"], {})[alloc_id] = None
        self._account(alloc)
        # Capacity is freed at plan time (desired stop), but blocked evals retry only when a
        # client reports the allocation finished, as in Nomad's FSM.
        if client_terminal(alloc) and (old is None or not client_terminal(old)):
            txn.terminal_allocs.append(alloc)
        txn.tables.add("allocs")
        txn.jobs.add(key)
        stripped = dict(alloc)
        stripped["Job"] = None
        filter_keys = [alloc["JobID"], alloc["DeploymentID"]]
        txn.events.append(Event.build("Allocation", self._type(txn, "AllocationUpdated"),
                                      alloc_id, alloc["Namespace"], filter_keys, txn.index,
                                      {"Allocation": stripped}))

    def put_deployment(self, txn: Txn, deployment: Json) -> None:
        if deployment["ID"] not in self.deployments:
            deployment["CreateIndex"] = txn.index
        deployment["ModifyIndex"] = txn.index
        self.deployments[deployment["ID"]] = deployment
        key = (deployment["Namespace"], deployment["JobID"])
        self.deployments_by_job.setdefault(key, {})[deployment["ID"]] = None
        txn.tables.add("deployment")
        txn.jobs.add(key)
        txn.events.append(Event.build("Deployment", self._type(txn, "DeploymentStatusUpdate"),
                                      deployment["ID"], deployment["Namespace"],
                                      [deployment["JobID"]], txn.index,
                                      {"Deployment": deployment}))

    def put_node(self, txn: Txn, node: Json) -> None:
        if node["ID"] not in self.nodes:
            node["CreateIndex"] = txn.index
            self.usage[node["ID"]] = Usage()
        node["ModifyIndex"] = txn.index
        self.nodes[node["ID"]] = node
        txn.tables.add("nodes")
        txn.events.append(Event.build("Node", self._type(txn, "NodeRegistration"), node["ID"],
                                      "", [], txn.index, {"Node": node}))

    def add_scaling_event(self, txn: Txn, key: JobKey, group: str, event: Json) -> None:
        event["CreateIndex"] = txn.index
        events = self.scaling_events.setdefault(key, {}).setdefault(group, [])
        events.insert(0, event)
        del events[20:]
        txn.tables.add("scaling_event")

    def touch(self, txn: Txn, table: str) -> None:
        txn.tables.add(table)

    def commit(self, txn: Txn) -> list[Json]:
        """Apply the transaction; returns allocations whose client status became terminal."""
        assert self._open is txn
        for key in sorted(txn.jobs):
            self._refresh_job(txn, key)
        self._open = None
        if not txn.tables:
            return []
        self.index = txn.index
        for table in txn.tables:
            self.table_index[table] = txn.index
        self.broker.publish(txn.index, txn.events)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return txn.terminal_allocs

    async def wait_for_change(self, within: float) -> None:
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), within)

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _type(txn: Txn, default: str) -> str:
        return txn.msg_type or default

    def _job_event(self, txn: Txn, job: Json, deleted: bool) -> None:
        payload: Json = {"Job": job}
        if deleted:
            payload["Deleted"] = True
        txn.events.append(Event.build("Job", self._type(txn, "JobRegistered"), job["ID"],
                                      job["Namespace"], [], txn.index, payload))

    def _new_summary(self, job: Json, index: int) -> Json:
        return {"JobID": job["ID"], "Namespace": job["Namespace"],
                "Summary": {g["Name"]: empty_group_summary()
                            for g in job.get("TaskGroups") or []},
                "Children": {"Pending": 0, "Running": 0, "Dead": 0}, "CreateIndex": index,
                "ModifyIndex": index}

    def _refresh_job(self, txn: Txn, key: JobKey) -> None:
        job = self.jobs.get(key)
        if job is None:
            return
        summary = self.summaries[key]
        counts: dict[str, Json] = {}
        for group in job.get("TaskGroups") or []:
            old = summary["Summary"].get(group["Name"]) or empty_group_summary()
            counts[group["Name"]] = {**empty_group_summary(), "Queued": old["Queued"]}
        column = {"pending": "Starting", "running": "Running", "complete": "Complete",
                  "failed": "Failed", "lost": "Lost", "unknown": "Unknown"}
        for alloc in self.job_allocs(key):
            group_counts = counts.setdefault(alloc["TaskGroup"], empty_group_summary())
            group_counts[column.get(alloc["ClientStatus"], "Unknown")] += 1
        if counts != summary["Summary"]:
            summary["Summary"] = counts
            summary["ModifyIndex"] = txn.index
            txn.tables.add("job_summary")
        status = self._job_status(job, key)
        if status != job["Status"]:
            updated = dict(job)
            updated["Status"] = status
            updated["ModifyIndex"] = txn.index
            self.jobs[key] = updated
            versions = self.versions.get(key)
            if versions and versions[0]["Version"] == updated["Version"]:
                versions[0] = updated
            txn.tables.add("jobs")
            self._job_event(txn, updated, deleted=False)

    def _job_status(self, job: Json, key: JobKey) -> str:
        if job["Type"] == "system" or job.get("Periodic") or job.get("ParameterizedJob"):
            return "dead" if job["Stop"] else "running"
        for deployment in self.job_deployments(key):
            if deployment["Status"] not in ("successful", "failed", "cancelled"):
                return "running"
        for alloc in self.job_allocs(key):
            if not alloc_terminal(alloc):
                return "running"
        evals = self.job_evals(key)
        if any(e["Status"] in ("pending", "blocked") for e in evals):
            return "pending"
        return "dead" if evals or job["Stop"] else "pending"

    def _account(self, alloc: Json) -> None:
        if alloc_terminal(alloc):
            return
        usage = self.usage.setdefault(alloc["NodeID"], Usage())
        usage.allocs[alloc["ID"]] = None
        resources = alloc["AllocatedResources"]
        for task in (resources.get("Tasks") or {}).values():
            usage.cpu += task["Cpu"]["CpuShares"]
            usage.memory += task["Memory"]["MemoryMB"]
            for device in task.get("Devices") or []:
                usage.devices.update(device["DeviceIDs"])
        usage.disk += resources["Shared"]["DiskMB"]
        for port in resources["Shared"].get("Ports") or []:
            usage.ports.add(port["Value"])

    def _unaccount(self, alloc: Json | None) -> None:
        if alloc is None or alloc_terminal(alloc):
            return
        usage = self.usage[alloc["NodeID"]]
        usage.allocs.pop(alloc["ID"], None)
        resources = alloc["AllocatedResources"]
        for task in (resources.get("Tasks") or {}).values():
            usage.cpu -= task["Cpu"]["CpuShares"]
            usage.memory -= task["Memory"]["MemoryMB"]
            for device in task.get("Devices") or []:
                usage.devices.difference_update(device["DeviceIDs"])
        usage.disk -= resources["Shared"]["DiskMB"]
        for port in resources["Shared"].get("Ports") or []:
            usage.ports.discard(port["Value"])


def client_terminal(alloc: Json) -> bool:
    return alloc["ClientStatus"] in TERMINAL_CLIENT
