"""Job defaults: the Go API's `Job.Canonicalize()` and the server's admission mutators.

`canonicalize` is what `/v1/jobs/parse?Canonicalize=true` applies and what the agent applies to
every register body. `admit` adds what the server adds before storing: default datacenters and
node pool, and the implied constraints for service providers and kill signals.
"""

from __future__ import annotations

import copy
from typing import Any

from .schema import empty

Json = dict[str, Any]

S = 1_000_000_000
MINUTE = 60 * S
HOUR = 60 * MINUTE

DEFAULT_UPDATE = {"Stagger": 30 * S, "MaxParallel": 1, "HealthCheck": "checks",
                  "MinHealthyTime": 10 * S, "HealthyDeadline": 5 * MINUTE,
                  "ProgressDeadline": 10 * MINUTE, "AutoRevert": False, "Canary": 0,
                  "AutoPromote": False}
_RESCHEDULE = {
    "service": {"Delay": 30 * S, "DelayFunction": "exponential", "MaxDelay": HOUR,
                "Unlimited": True, "Attempts": 0, "Interval": 0},
    "batch": {"Attempts": 1, "Interval": 24 * HOUR, "Delay": 5 * S, "DelayFunction": "constant",
              "MaxDelay": 0, "Unlimited": False},
}
_RESCHEDULE_OTHER = {"Attempts": 0, "Interval": 0, "Delay": 0, "DelayFunction": "",
                     "MaxDelay": 0, "Unlimited": False}
_RESTART_SERVICE = {"Delay": 15 * S, "Attempts": 2, "Interval": 30 * MINUTE, "Mode": "fail",
                    "RenderTemplates": False}
_RESTART_BATCH = {"Delay": 15 * S, "Attempts": 3, "Interval": 24 * HOUR, "Mode": "fail",
                  "RenderTemplates": False}
_MIGRATE = {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * S,
            "HealthyDeadline": 5 * MINUTE}

CONSUL_CONSTRAINT = {"LTarget": "${attr.consul.version}", "RTarget": ">= 1.8.0",
                     "Operand": "semver"}
NOMAD_SD_CONSTRAINT = {"LTarget": "${attr.nomad.service_discovery}", "RTarget": "true",
                       "Operand": "="}


def canonicalize(job: Json) -> Json:
    """Fill the Go API defaults in place (api.Job.Canonicalize) and return the job."""
    job_id = job.get("ID") or ""
    job["ID"] = job_id
    _default(job, {"Name": job_id, "ParentID": "", "Namespace": "default", "Priority": 50,
                   "Stop": False, "Region": "global", "NodePool": "", "Type": "service",
                   "AllAtOnce": False, "ConsulNamespace": "", "VaultNamespace": "",
                   "NomadTokenID": "", "Status": "", "StatusDescription": "", "Stable": False,
                   "Version": 0, "CreateIndex": 0, "ModifyIndex": 0, "JobModifyIndex": 0})
    job_type = job["Type"]
    if job.get("Update") is not None:
        _default(job["Update"], DEFAULT_UPDATE)
    elif job_type in ("service", "system"):
        job["Update"] = _defaulted(None, DEFAULT_UPDATE, "UpdateStrategy")
    for group in job.get("TaskGroups") or []:
        _canonicalize_group(group, job)
    for item in (job.get("Spreads") or []) + (job.get("Affinities") or []):
        _default(item, {"Weight": 50})
    return job


def _canonicalize_group(group: Json, job: Json) -> None:
    job_type = job["Type"]
    _default(group, {"Name": ""})
    if group.get("Count") is None:
        scaling = group.get("Scaling")
        group["Count"] = scaling["Min"] if scaling and scaling.get("Min") is not None else 1
    if group.get("Scaling") is not None:
        scaling = group["Scaling"]
        _default(scaling, {"Enabled": True, "Min": group["Count"]})
        scaling["Type"] = scaling.get("Type") or "horizontal"
    group["EphemeralDisk"] = _defaulted(group.get("EphemeralDisk"),
                                        {"Sticky": False, "Migrate": False, "SizeMB": 300},
                                        "EphemeralDisk")
    job_update, group_update = job.get("Update"), group.get("Update")
    if job_update is not None and group_update is not None:
        group["Update"] = _merge(job_update, group_update)
    elif job_update is not None and not _update_empty(job_update):
        group["Update"] = dict(job_update)
    if group.get("Update") is not None:
        _default(group["Update"], DEFAULT_UPDATE)
    group["ReschedulePolicy"] = _merge(job.get("Reschedule"), group.get("ReschedulePolicy"))
    if group["ReschedulePolicy"] is None and job_type not in ("system", "sysbatch"):
        group["ReschedulePolicy"] = dict(_RESCHEDULE.get(job_type, _RESCHEDULE_OTHER))
    if group["ReschedulePolicy"] is not None:
        _default(group["ReschedulePolicy"], _RESCHEDULE.get(job_type, _RESCHEDULE_OTHER))
    group["Migrate"] = _merge(job.get("Migrate"), group.get("Migrate"))
    if group["Migrate"] is None and job_type == "service":
        group["Migrate"] = empty("MigrateStrategy")
    if group["Migrate"] is not None:
        _default(group["Migrate"], _MIGRATE)
    restart = dict(_RESTART_SERVICE if job_type in ("service", "system") else _RESTART_BATCH)
    group["RestartPolicy"] = _merge(restart, group.get("RestartPolicy"))
    for task in group.get("Tasks") or []:
        _canonicalize_task(task, group, job)
    for item in (group.get("Spreads") or []) + (group.get("Affinities") or []):
        _default(item, {"Weight": 50})
    for service in group.get("Services") or []:
        _canonicalize_service(service, None, group, job)
    if group.get("Disconnect") is not None:
        _default(group["Disconnect"], {"Replace": True, "Reconcile": "best_score"})


def _canonicalize_task(task: Json, group: Json, job: Json) -> None:
    resources = task.get("Resources") or empty("Resources")
    task["Resources"] = resources
    if resources.get("Cores") is None:
        resources["Cores"] = 0
        if resources.get("CPU") is None:
            resources["CPU"] = 100
    if resources.get("CPU") is None:
        resources["CPU"] = 0
    _default(resources, {"MemoryMB": 300})
    for device in resources.get("Devices") or []:
        _default(device, {"Count": 1})
        for affinity in device.get("Affinities") or []:
            _default(affinity, {"Weight": 50})
    _default(task, {"KillTimeout": 5 * S})
    task["LogConfig"] = _defaulted(task.get("LogConfig"),
                                   {"MaxFiles": 10, "MaxFileSizeMB": 10, "Disabled": False},
                                   "LogConfig")
    for artifact in task.get("Artifacts") or []:
        _default(artifact, {"GetterMode": "any", "GetterInsecure": False, "GetterSource": ""})
        if artifact.get("RelativeDest") is None:
            artifact["RelativeDest"] = "local/"
    for template in task.get("Templates") or []:
        _canonicalize_template(template)
    for service in task.get("Services") or []:
        _canonicalize_service(service, task, group, job)
    for affinity in task.get("Affinities") or []:
        _default(affinity, {"Weight": 50})
    for mount in task.get("VolumeMounts") or []:
        _default(mount, {"PropagationMode": "private", "ReadOnly": False, "SELinuxLabel": ""})
    group_restart = group["RestartPolicy"]
    task["RestartPolicy"] = _merge(group_restart, task.get("RestartPolicy"))


def _canonicalize_template(template: Json) -> None:
    _default(template, {"SourcePath": "", "DestPath": "", "EmbeddedTmpl": "",
                        "ChangeMode": "restart", "Once": False, "Splay": 5 * S, "Perms": "0644",
                        "LeftDelim": "{{", "RightDelim": "}}", "Envvars": False,
                        "ErrMissingKey": False, "VaultGrace": 0})
    if template.get("ChangeSignal") is None:
        template["ChangeSignal"] = "SIGHUP" if template["ChangeMode"] == "signal" else ""
    else:
        template["ChangeSignal"] = str(template["ChangeSignal"]).upper()


def _canonicalize_service(service: Json, task: Json | None, group: Json, job: Json) -> None:
    if not service.get("Name"):
        parts = [job["Name"], group["Name"]] + ([task["Name"]] if task else [])
        service["Name"] = "-".join(parts)
    for key, value in (("AddressMode", "auto"), ("OnUpdate", "require_healthy"),
                       ("Provider", "consul"), ("Cluster", "default")):
        if not service.get(key):
            service[key] = value
    for key in ("Meta", "CanaryMeta", "TaggedAddresses"):
        if not service.get(key):
            service[key] = None
    if service.get("Weights") is not None:
        for key in ("Passing", "Warning"):
            if (service["Weights"].get(key) or 0) <= 0:
                service["Weights"][key] = 1
    for check in service.get("Checks") or []:
        merged = _merge_check_restart(service.get("CheckRestart"), check.get("CheckRestart"))
        if merged is not None and merged.get("Grace") is None:
            merged["Grace"] = S
        check["CheckRestart"] = merged
        for key in ("SuccessBeforePassing", "FailuresBeforeCritical", "FailuresBeforeWarning"):
            check[key] = max(check.get(key) or 0, 0)
        if not check.get("OnUpdate"):
            check["OnUpdate"] = service["OnUpdate"]


def _merge_check_restart(base: Json | None, other: Json | None) -> Json | None:
    if base is None:
        return copy.deepcopy(other)
    merged = dict(base)
    if other is not None:
        if (other.get("Limit") or 0) > 0:
            merged["Limit"] = other["Limit"]
        if other.get("Grace") is not None:
            merged["Grace"] = other["Grace"]
        if other.get("IgnoreWarnings"):
            merged["IgnoreWarnings"] = True
    return merged


def admit(job: Json) -> Json:
    """Server-side mutations before a job is stored (structs canonicalize + implied constraints)."""
    if not job.get("Datacenters"):
        job["Datacenters"] = ["*"]
    if not job.get("NodePool"):
        job["NodePool"] = "default"
    for group in job.get("TaskGroups") or []:
        providers = {s.get("Provider") for s in group.get("Services") or []}
        task_providers = {s.get("Provider") for t in group.get("Tasks") or []
                          for s in t.get("Services") or []}
        if "nomad" in providers | task_providers:
            _add_constraint(group, NOMAD_SD_CONSTRAINT, full=True)
        if "consul" in providers:
            _add_constraint(group, CONSUL_CONSTRAINT, full=False)
        for task in group.get("Tasks") or []:
            if any(s.get("Provider") == "consul" for s in task.get("Services") or []):
                _add_constraint(task, CONSUL_CONSTRAINT, full=False)
        signals = sorted({t["KillSignal"] for t in group.get("Tasks") or [] if t.get("KillSignal")})
        if signals:
            _add_constraint(group, {"LTarget": "${attr.os.signals}", "RTarget": ",".join(signals),
                                    "Operand": "set_contains"}, full=True)
    return job


def _add_constraint(owner: Json, constraint: Json, full: bool) -> None:
    existing = owner.get("Constraints") or []
    for current in existing:
        if full and current == constraint:
            return
        if not full and current.get("LTarget") == constraint["LTarget"]:
            return
    owner["Constraints"] = [*existing, dict(constraint)]


def _update_empty(update: Json) -> bool:
    return not any(update.get(k) for k in ("Stagger", "MaxParallel", "HealthCheck",
                                           "MinHealthyTime", "HealthyDeadline",
                                           "ProgressDeadline", "AutoRevert", "AutoPromote",
                                           "Canary"))


def _merge(base: Json | None, override: Json | None) -> Json | None:
    """Go's X.Merge: fields set (non-null) in override win over base."""
    if base is None:
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if value is not None:
            merged[key] = value
    return merged


def _default(target: Json, defaults: Json) -> None:
    for key, value in defaults.items():
        if target.get(key) is None:
            target[key] = copy.deepcopy(value) if isinstance(value, dict | list) else value


def _defaulted(value: Json | None, defaults: Json, struct: str) -> Json:
    out = value if value is not None else empty(struct)
    _default(out, defaults)
    return out
