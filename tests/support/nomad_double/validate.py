"""Job validation as the server does it, with Nomad's multierror text (returned as HTTP 500)."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def multierror(errors: list[str]) -> str:
    """hashicorp/go-multierror's default format."""
    points = "\n\t".join(f"* {e}" for e in errors)
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} {noun} occurred:\n\t{points}\n\n"


def validate_job(job: Json) -> str | None:
    """The error text for an invalid job, or None."""
    errors: list[str] = []
    job_id = job.get("ID") or ""
    if not job.get("Region"):
        errors.append("Missing job region")
    if not job_id:
        errors.append("Missing job ID")
    elif " " in job_id:
        errors.append("Job ID contains a space")
    if not job.get("Name"):
        errors.append("Missing job name")
    if job.get("Type") not in ("service", "batch", "system", "sysbatch"):
        errors.append(f'Invalid job type: "{job.get("Type")}"')
    if any(dc == "" for dc in job.get("Datacenters") or []):
        errors.append("Job datacenter must be non-empty string")
    groups = job.get("TaskGroups") or []
    if not groups:
        errors.append("Missing job task groups")
    for number, constraint in enumerate(job.get("Constraints") or [], start=1):
        problem = _constraint_problem(constraint)
        if problem:
            errors.append(f"Constraint {number} validation failed: {problem}")
    seen: dict[str, int] = {}
    for number, group in enumerate(groups, start=1):
        name = group.get("Name") or ""
        if not name:
            errors.append(f"Job task group {number} missing name")
        elif name in seen:
            errors.append(f"Job task group {number} redefines '{name}' from group {seen[name]}")
        else:
            seen[name] = number
        if job.get("Type") == "system" and (group.get("Count") or 0) > 1:
            errors.append(f"Job task group {name} has count {group['Count']}. Count cannot "
                          "exceed 1 with system scheduler")
    for group in groups:
        problems = _group_problems(group)
        if problems:
            errors.append(f"Task group {group.get('Name')} validation failed: "
                          f"{multierror(problems)}")
    priority = job.get("Priority")
    if priority is not None and not 1 <= priority <= 100:
        errors.append("job priority must be between [1, 100]")
    return multierror(errors) if errors else None


def _group_problems(group: Json) -> list[str]:
    problems = []
    count = group.get("Count") or 0
    if count < 0:
        problems.append("Task group count can't be negative")
    tasks = group.get("Tasks") or []
    if not tasks:
        problems.append("Missing tasks for task group")
    scaling = group.get("Scaling")
    if scaling is not None:
        minimum = scaling.get("Min") or 0
        maximum = scaling.get("Max")
        if maximum is None or maximum < 0:
            problems.append("Scaling policy invalid: maximum count must be specified and "
                            "non-negative")
        elif maximum < minimum:
            problems.append("Scaling policy invalid: maximum count must not be less than "
                            "minimum count")
        if maximum is not None and count > maximum:
            problems.append("Scaling policy invalid: task group count must not be greater than "
                            "maximum count in scaling policy")
        if count < minimum:
            problems.append("Scaling policy invalid: task group count must not be less than "
                            "minimum count in scaling policy")
    names: set[str] = set()
    for number, task in enumerate(tasks, start=1):
        task_problems = []
        if not task.get("Name"):
            problems.append(f"Task {number} missing name")
        elif task["Name"] in names:
            problems.append(f"Task {number} redefines '{task['Name']}' from task")
        names.add(task.get("Name") or "")
        if not task.get("Driver"):
            task_problems.append("Missing task driver")
        resources = task.get("Resources") or {}
        if (resources.get("MemoryMB") or 0) < 10:
            task_problems.append(f"minimum MemoryMB value is 10; got {resources.get('MemoryMB')}")
        for device in resources.get("Devices") or []:
            if not device.get("Name"):
                task_problems.append("device name must be given as one of the following: type, "
                                     "vendor/type, or vendor/type/name")
        if task_problems:
            problems.append(f"Task {task.get('Name')} validation failed: "
                            f"{multierror(task_problems)}")
    ports = [p for n in group.get("Networks") or []
             for p in (n.get("DynamicPorts") or []) + (n.get("ReservedPorts") or [])]
    labels = [p.get("Label") for p in ports]
    for label in sorted({label for label in labels if labels.count(label) > 1}):
        problems.append(f"Port label {label} already in use")
    return problems


def _constraint_problem(constraint: Json) -> str | None:
    operand = constraint.get("Operand") or ""
    known = {"=", "==", "is", "!=", "not", "<", "<=", ">", ">=", "regexp", "version", "semver",
             "set_contains", "set_contains_all", "set_contains_any", "is_set", "is_not_set",
             "distinct_hosts", "distinct_property"}
    if operand not in known:
        return f'Unknown constraint type "{operand}"'
    if operand not in ("distinct_hosts", "distinct_property", "is_set", "is_not_set") and (
            not constraint.get("LTarget") and not constraint.get("RTarget")):
        return "No LTarget or RTarget provided"
    return None
