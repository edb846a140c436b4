"""Server-side operations of the double: what the Job, Alloc, Deployment and Node RPCs do.

Route handlers decode requests and call one method here; methods validate, write through the
store in Nomad's order, enqueue evaluations and return Nomad's response objects. Errors are
`ApiError`s carrying Nomad's exact text and status (CAS conflicts and validation are 500s).
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from .canonical import admit, canonicalize
from .client import ClientSide
from .errors import ApiError
from .events import EventBroker
from .feasibility import computed_class
from .fleet import DYNAMIC_META_PREFIX
from .gotypes import now_ns
from .objects import ACTIVE_DEPLOYMENT, new_eval, register_response
from .reconcile import Outcome
from .runners import Runner
from .scheduler import Defer, Scheduler
from .state import JobKey, Store
from .validate import validate_job

Json = dict[str, Any]
CAS = "Enforcing job modify index"
_SERVER_FIELDS = ("Status", "StatusDescription", "Stable", "Version", "SubmitTime",
                  "CreateIndex", "ModifyIndex", "JobModifyIndex", "NomadTokenID")


class Cluster:
    """The double's server: state, scheduler and the client side driven by a runner."""

    def __init__(self, nodes: list[Json], runner: Runner, defer: Defer, seed: int = 0,
                 event_buffer: int = 100) -> None:
        self.broker = EventBroker(event_buffer)
        self.store = Store(self.broker)
        self.scheduler = Scheduler(self.store, random.Random(seed), defer,
                                   placed=self._placed, stopped=self._stopped)
        self.client = ClientSide(self.store, self.scheduler)
        self.runner = runner
        self.static_meta: dict[str, dict[str, str]] = {}
        self.dynamic_meta: dict[str, dict[str, str | None]] = {}
        if nodes:
            self.add_nodes(nodes)

    # -- jobs ------------------------------------------------------------------------------

    def register(self, api_job: Json, *, namespace: str | None, enforce: bool = False,
                 job_modify_index: int = 0, preserve_counts: bool = False,
                 eval_priority: int = 0) -> Json:
        job = self.prepare(api_job, namespace)
        key = (job["Namespace"], job["ID"])
        existing = self.store.jobs.get(key)
        if enforce:
            _enforce(existing, job_modify_index)
        if existing is not None and existing["Type"] != job["Type"]:
            raise ApiError(500, f'cannot update job from type "{existing["Type"]}" to '
                                f'"{job["Type"]}"')
        if preserve_counts and existing is not None:
            counts = {g["Name"]: g["Count"] for g in existing["TaskGroups"]}
            for group in job["TaskGroups"]:
                group["Count"] = counts.get(group["Name"], group["Count"])
        job["SubmitTime"] = now_ns()
        evaluation = new_eval(job, "job-register", priority=eval_priority or job["Priority"])
        if existing is not None and spec(existing) == spec(job):
            evaluation["JobModifyIndex"] = existing["JobModifyIndex"]
            txn = self.store.begin("EvaluationUpdated")
            self.store.put_eval(txn, evaluation)
            self.store.commit(txn)
            self._run(evaluation)
            return register_response(evaluation["ID"], txn.index, existing["ModifyIndex"],
                                     txn.index)
        txn = self.store.begin("JobRegistered")
        self._store_version(txn.index, job, existing)
        evaluation["JobModifyIndex"] = txn.index
        self.store.put_job(txn, job, new_version=True)
        self.store.put_eval(txn, evaluation)
        self.store.commit(txn)
        self._run(evaluation)
        return register_response(evaluation["ID"], txn.index, txn.index, txn.index)

    def prepare(self, api_job: Json, namespace: str | None) -> Json:
        """Canonicalize, validate and admit a decoded api.Job the way the agent+server do."""
        job = canonicalize(copy.deepcopy(api_job))
        if namespace:
            job["Namespace"] = namespace
        error = validate_job(job)
        if error:
            raise ApiError(500, error)
        return admit(job)

    def plan(self, api_job: Json, namespace: str | None) -> tuple[Outcome, Json | None]:
        job = self.prepare(api_job, namespace)
        existing = self.store.jobs.get((job["Namespace"], job["ID"]))
        if existing is not None and spec(existing) == spec(job):
            job = existing
        else:
            job["Version"] = existing["Version"] + 1 if existing else 0
            job["CreateIndex"] = existing["CreateIndex"] if existing else self.store.index + 1
            job["JobModifyIndex"] = job["ModifyIndex"] = self.store.index + 1
        evaluation = new_eval(job, "job-register")
        return self.scheduler.plan(job, evaluation), existing

    def deregister(self, key: JobKey, purge: bool, eval_priority: int = 0) -> Json:
        existing = self.store.jobs.get(key)
        if existing is None:
            return {**register_response("", 0, 0, 0), "VolumeEvalID": "", "VolumeEvalIndex": 0}
        evaluation = new_eval(existing, "job-deregister",
                              priority=eval_priority or existing["Priority"] or 50)
        evaluation["Type"] = "service"
        txn = self.store.begin("JobDeregistered")
        if purge:
            self.store.delete_job(txn, key)
        else:
            stopped = {**existing, "Stop": True, "SubmitTime": now_ns()}
            self._store_version(txn.index, stopped, existing)
            self.store.put_job(txn, stopped, new_version=True)
        evaluation["JobModifyIndex"] = txn.index
        self.store.put_eval(txn, evaluation)
        self.store.commit(txn)
        self._run(evaluation)
        return {**register_response(evaluation["ID"], txn.index, txn.index, txn.index),
                "VolumeEvalID": "", "VolumeEvalIndex": 0}

    def scale(self, key: JobKey, group_name: str, count: int | None, *, message: str = "",
              error: bool = False, meta: Json | None = None, job_modify_index: int = 0) -> Json:
        job = self.store.jobs.get(key)
        if not group_name:
            raise ApiError(400, "missing task group name for scaling action")
        if count is not None and count < 0:
            raise ApiError(400, "scaling action count can't be negative")
        if count is not None and error:
            raise ApiError(400, "scaling action should not contain count if error is true")
        if job is None:
            raise ApiError(404, f'job "{key[1]}" not found')
        if job["Type"] == "system" and count is not None and count > 1:
            raise ApiError(400, 'jobs of type "system" can only be scaled between 0 and 1')
        group = next((g for g in job["TaskGroups"] if g["Name"] == group_name), None)
        if group is None:
            raise ApiError(400, f'task group "{group_name}" specified for scaling does not '
                                "exist in job")
        event: Json = {"Time": now_ns(), "Count": count, "PreviousCount": group["Count"],
                       "Message": message, "Error": error, "Meta": meta, "EvalID": None}
        if count is None:
            txn = self.store.begin("ScalingEventRegister")
            self.store.add_scaling_event(txn, key, group_name, event)
            self.store.commit(txn)
            return register_response("", 0, job["ModifyIndex"], txn.index)
        scaling = group.get("Scaling")
        if scaling is not None:
            if count < (scaling.get("Min") or 0):
                raise ApiError(400, "group count was less than scaling policy minimum: "
                                    f"{count} < {scaling.get('Min') or 0}")
            if scaling.get("Max") is not None and scaling["Max"] < count:
                raise ApiError(400, "group count was greater than scaling policy maximum: "
                                    f"{count} > {scaling['Max']}")
        deployment = self.store.latest_deployment(key)
        if deployment is not None and deployment["Status"] in ACTIVE_DEPLOYMENT and \
                deployment["JobCreateIndex"] == job["CreateIndex"]:
            raise ApiError(400, "job scaling blocked due to active deployment")
        if job_modify_index and job_modify_index != job["JobModifyIndex"]:
            raise ApiError(500, f"{CAS} {job_modify_index}: job exists with conflicting job "
                                f"modify index: {job['JobModifyIndex']}")
        scaled = copy.deepcopy(job)
        next(g for g in scaled["TaskGroups"] if g["Name"] == group_name)["Count"] = count
        scaled["SubmitTime"] = now_ns()
        txn = self.store.begin("JobRegistered")
        self._store_version(txn.index, scaled, job)
        self.store.put_job(txn, scaled, new_version=True)
        self.store.commit(txn)
        job_index = txn.index
        evaluation = new_eval(scaled, "job-scaling")
        evaluation["JobModifyIndex"] = job_index
        txn = self.store.begin("EvaluationUpdated")
        self.store.put_eval(txn, evaluation)
        self.store.commit(txn)
        eval_index = txn.index
        event["EvalID"] = evaluation["ID"]
        txn = self.store.begin("ScalingEventRegister")
        self.store.add_scaling_event(txn, key, group_name, event)
        self.store.commit(txn)
        self._run(evaluation)
        return register_response(evaluation["ID"], eval_index, job_index, txn.index)

    def evaluate(self, key: JobKey, force_reschedule: bool = False) -> Json:
        job = self.store.jobs.get(key)
        if job is None:
            raise ApiError(500, "job not found")
        txn = self.store.begin("EvaluationUpdated")
        if force_reschedule:
            for alloc in self.store.job_allocs(key):
                if alloc["ClientStatus"] == "failed" and alloc["DesiredStatus"] == "run":
                    transition = {**alloc["DesiredTransition"], "ForceReschedule": True}
                    self.store.put_alloc(txn, {**alloc, "DesiredTransition": transition})
        evaluation = new_eval(job, "job-register")
        self.store.put_eval(txn, evaluation)
        self.store.commit(txn)
        self._run(evaluation)
        return register_response(evaluation["ID"], txn.index, job["JobModifyIndex"], txn.index)

    def _store_version(self, index: int, job: Json, existing: Json | None) -> None:
        job["Version"] = existing["Version"] + 1 if existing else 0
        job["CreateIndex"] = existing["CreateIndex"] if existing else index
        job["JobModifyIndex"] = index
        job["Stable"] = False
        job["Status"] = existing["Status"] if existing else "pending"

    def _run(self, evaluation: Json) -> None:
        self.scheduler.enqueue(evaluation["ID"])
        self.scheduler.run()

    # -- allocations and deployments -------------------------------------------------------

    def stop_alloc(self, alloc_id: str) -> Json:
        alloc = self.store.allocs.get(alloc_id)
        if alloc is None:
            raise ApiError(404, "alloc not found")
        job = self.store.jobs.get((alloc["Namespace"], alloc["JobID"])) or alloc["Job"]
        evaluation = new_eval(job, "alloc-stop")
        txn = self.store.begin("AllocationUpdateDesiredStatus")
        transition = {**alloc["DesiredTransition"], "Migrate": True}
        self.store.put_alloc(txn, {**alloc, "DesiredTransition": transition})
        self.store.put_eval(txn, evaluation)
        self.store.commit(txn)
        self._run(evaluation)
        return {"EvalID": evaluation["ID"], "Index": txn.index}

    def fail_deployment(self, deployment_id: str) -> Json:
        self._active_deployment(deployment_id)
        updated = self.scheduler.set_deployment_status(deployment_id, "failed",
                                                       "Deployment marked as failed")
        return self._deployment_response(updated)

    def promote_deployment(self, deployment_id: str, groups: list[str] | None) -> Json:
        deployment = copy.deepcopy(self._active_deployment(deployment_id))
        for name, state in deployment["TaskGroups"].items():
            if state["DesiredCanaries"] and (groups is None or name in groups):
                state["Promoted"] = True
        job = self.store.jobs.get((deployment["Namespace"], deployment["JobID"]))
        txn = self.store.begin("DeploymentPromotion")
        self.store.put_deployment(txn, deployment)
        evaluation = None
        if job is not None:
            evaluation = new_eval(job, "deployment-watcher")
            evaluation["DeploymentID"] = deployment_id
            self.store.put_eval(txn, evaluation)
        self.store.commit(txn)
        if evaluation is not None:
            self._run(evaluation)
        return self._deployment_response(deployment)

    def _active_deployment(self, deployment_id: str) -> Json:
        deployment = self.store.deployments.get(deployment_id)
        if deployment is None:
            raise ApiError(500, "deployment not found")
        if deployment["Status"] not in ACTIVE_DEPLOYMENT:
            raise ApiError(500, f'deployment "{deployment_id}" is terminal')
        return deployment

    def _deployment_response(self, deployment: Json) -> Json:
        key = (deployment["Namespace"], deployment["JobID"])
        evals = sorted(self.store.job_evals(key), key=lambda e: e["CreateIndex"])
        last = evals[-1] if evals else {"ID": "", "CreateIndex": 0}
        return {"EvalID": last["ID"], "EvalCreateIndex": last["CreateIndex"],
                "DeploymentModifyIndex": self.store.deployments[deployment["ID"]]["ModifyIndex"],
                "RevertedJobVersion": None, "Index": self.store.index, "LastContact": 0,
                "KnownLeader": False}

    def _placed(self, allocs: list[Json]) -> None:
        self.client.received(allocs)
        for alloc in allocs:
            self.runner.start(self.store.allocs[alloc["ID"]])

    def _stopped(self, allocs: list[Json]) -> None:
        for alloc in allocs:
            self.runner.stop(self.store.allocs[alloc["ID"]])

    # -- nodes -----------------------------------------------------------------------------

    def add_nodes(self, nodes: list[Json]) -> None:
        txn = self.store.begin("NodeRegistration")
        classes = set()
        for raw in nodes:
            node = copy.deepcopy(raw)
            meta = node.get("Meta") or {}
            self.static_meta[node["ID"]] = {k: v for k, v in meta.items()
                                            if not k.startswith(DYNAMIC_META_PREFIX)}
            self.dynamic_meta[node["ID"]] = {k: v for k, v in meta.items()
                                             if k.startswith(DYNAMIC_META_PREFIX)}
            node["ComputedClass"] = computed_class(node)
            classes.add(node["ComputedClass"])
            self.store.put_node(txn, node)
        self.store.commit(txn)
        for node_class in classes:
            self.scheduler.unblock(node_class)

    def node_meta(self, node_id: str) -> Json:
        node = self.store.nodes.get(node_id)
        if node is None:
            raise ApiError(404, "Unknown node")
        return {"Meta": node["Meta"], "Dynamic": self.dynamic_meta[node_id],
                "Static": self.static_meta[node_id]}

    def apply_node_meta(self, node_id: str, meta: dict[str, str | None]) -> Json:
        node = self.store.nodes.get(node_id)
        if node is None:
            raise ApiError(404, "Unknown node")
        dynamic, static = self.dynamic_meta[node_id], self.static_meta[node_id]
        updated = dict(node)
        merged = dict(node["Meta"] or {})
        for key, value in meta.items():
            dynamic[key] = value
            if value is None:
                merged.pop(key, None)
                if key not in static:
                    dynamic.pop(key, None)
            else:
                merged[key] = value
        updated["Meta"] = merged
        updated["ComputedClass"] = computed_class(updated)
        txn = self.store.begin("NodeRegistration")
        self.store.put_node(txn, updated)
        self.store.commit(txn)
        self.scheduler.unblock(updated["ComputedClass"])
        return self.node_meta(node_id)

    def set_node_eligibility(self, node_id: str, eligible: bool) -> Json:
        node = self.store.nodes.get(node_id)
        if node is None:
            raise ApiError(404, "node not found")
        updated = {**node, "SchedulingEligibility": "eligible" if eligible else "ineligible"}
        txn = self.store.begin("NodeEligibility")
        self.store.put_node(txn, updated)
        self.store.commit(txn)
        if eligible:
            self.scheduler.unblock(updated["ComputedClass"])
        return {"EvalIDs": None, "EvalCreateIndex": 0, "NodeModifyIndex": txn.index,
                "Index": txn.index, "LastContact": 0, "KnownLeader": False}

    def set_node_devices(self, node_id: str, devices: list[Json] | None) -> Json:
        """A client's node update after its device plugin sent a new fingerprint: the new
        NodeResources.Devices (health included), and blocked evaluations may retry."""
        node = self.store.nodes.get(node_id)
        if node is None:
            raise ApiError(404, "node not found")
        updated = copy.deepcopy(node)
        updated["NodeResources"]["Devices"] = copy.deepcopy(devices) or None
        updated["ComputedClass"] = computed_class(updated)
        txn = self.store.begin("NodeRegistration")
        self.store.put_node(txn, updated)
        self.store.commit(txn)
        self.scheduler.unblock(updated["ComputedClass"])
        return updated


def spec(job: Json) -> str:
    """The part of a job whose change makes a new version."""
    return json.dumps({k: v for k, v in job.items() if k not in _SERVER_FIELDS}, sort_keys=True)


def _enforce(existing: Json | None, index: int) -> None:
    """structs.Job.EnforceIndex, with its exact error texts."""
    if existing is not None:
        if index == 0:
            raise ApiError(500, f"{CAS} 0: job already exists")
        if index != existing["JobModifyIndex"]:
            raise ApiError(500, f"{CAS} {index}: job exists with conflicting job modify index: "
                                f"{existing['JobModifyIndex']}")
    elif index != 0:
        raise ApiError(500, f"{CAS} {index}: job does not exist")
