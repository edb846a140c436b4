"""JobspecContext -> the Nomad API's job JSON, the same job the HCL template describes.

Registering used to send the rendered HCL to ``/v1/jobs/parse`` first: a round trip per job,
and on the server an HCL parse that costs more than placing the job (the double's parser
takes about 40 ms a job; bench/placement.py). The HCL stays for display (``service
render``, plan), and tests/bridge/test_jobjson.py holds that both renderings are one job.

Values go in as they are: JSON has no interpolation of its own, so what the HCL filters
escape (``$${``, ``%%{``, quotes) is simply the literal text here. Nomad canonicalizes a
registered job (fills defaults) like the parse endpoint does, so only the fields the
template sets are given.
"""

from __future__ import annotations

from typing import Any

from bridge.nomad.jobspec import JobspecContext

S = 1_000_000_000  # Nomad's durations are nanoseconds in JSON
Json = dict[str, Any]


def job_json(c: JobspecContext) -> Json:
    job: Json = {
        "ID": c.job_id, "Name": c.job_id, "Type": "service",
        "Datacenters": list(c.datacenters), "Namespace": c.namespace, "Priority": c.priority,
        "Meta": dict(c.meta),
        "Constraints": [{"LTarget": k.attribute, "Operand": k.operator, "RTarget": k.value}
                        for k in c.constraints] or None,
        "Affinities": [{"LTarget": a.attribute, "Operand": a.operator, "RTarget": a.value,
                        "Weight": a.weight} for a in c.affinities] or None,
        "Update": {"MaxParallel": c.max_parallel, "HealthCheck": "checks", "MinHealthyTime": 10 * S,
                   "HealthyDeadline": c.healthy_deadline_s * S,
                   "ProgressDeadline": (c.healthy_deadline_s + 300) * S, "AutoRevert": True},
        "TaskGroups": [_group(c)],
    }
    if c.region:
        job["Region"] = c.region
    return job


def _group(c: JobspecContext) -> Json:
    port: Json = {"Label": "http", "To": c.container_port}
    network: Json = {"DynamicPorts": [{**port, "Value": 0}]}
    if c.static_port:
        network = {"ReservedPorts": [{**port, "Value": c.static_port}]}
    check: Json = {
        "Name": "ready", "Type": c.check.type, "Interval": c.check.interval_s * S,
        "Timeout": c.check.timeout_s * S, "FailuresBeforeCritical": c.check.failures,
        "CheckRestart": {"Limit": c.check.failures, "Grace": c.healthy_deadline_s * S},
    }
    if c.check.type == "http":
        check["Path"] = c.check.path
    group: Json = {
        "Name": "engine", "Count": c.count, "Networks": [network],
        "Services": [{
            "Name": c.service_name, "PortLabel": "http", "Provider": "consul",
            "Tags": list(c.service_tags),
            "Meta": {"hf_task_group_id": c.task_group_id, "hf_alloc_id": "${NOMAD_ALLOC_ID}",
                     "hf_alloc_index": "${NOMAD_ALLOC_INDEX}"},
            "Checks": [check],
        }],
        "RestartPolicy": {"Attempts": 2, "Interval": 1800 * S, "Delay": 15 * S,
                          "Mode": "fail"},
        "ReschedulePolicy": {"Unlimited": True, "Delay": 30 * S,
                             "DelayFunction": "exponential", "MaxDelay": 3600 * S},
        "Tasks": [_task(c)],
    }
    if c.scaling:
        group["Scaling"] = {"Enabled": False, "Min": c.scaling[0], "Max": c.scaling[1]}
    if c.spread:
        group["Spreads"] = [{"Attribute": "${node.unique.id}", "Weight": 100}]
    return group


def _task(c: JobspecContext) -> Json:
    config: Json = {"image": c.image}
    if c.entrypoint:
        config["entrypoint"] = list(c.entrypoint)
    config["args"] = list(c.args)
    config["ports"] = ["http"]
    if c.shm_size_bytes:
        config["shm_size"] = c.shm_size_bytes
    if c.mounts:
        config["mount"] = [{"type": "bind", "source": m.source, "target": m.target,
                            "readonly": m.readonly} for m in c.mounts]
    resources: Json = {"CPU": c.cpu_mhz, "MemoryMB": c.memory_mb}
    if c.device:
        device: Json = {"Name": c.device.name, "Count": c.device.count}
        constraints = []
        if c.device.min_memory_mib:
            constraints.append({"LTarget": "${device.attr.memory}", "Operand": ">=",
                                "RTarget": f"{c.device.min_memory_mib} MiB"})
        if c.device.isolated:
            constraints.append({"LTarget": "${device.attr.isolation}", "Operand": "!=",
                                "RTarget": "none"})
        if constraints:
            device["Constraints"] = constraints
        if c.device.prefer_p2p:
            device["Affinities"] = [{"LTarget": "${device.attr.p2p}", "Operand": "=",
                                     "RTarget": "pcie-switch", "Weight": 50}]
        resources["Devices"] = [device]
    task: Json = {
        "Name": "engine", "Driver": "docker", "Config": config, "Resources": resources,
        "KillTimeout": 30 * S, "LogConfig": {"MaxFiles": 5, "MaxFileSizeMB": 20},
    }
    if c.env:
        task["Env"] = dict(c.env)
    if c.files:
        task["Templates"] = [{"DestPath": f"local/{f.name}", "ChangeMode": "restart",
                              "EmbeddedTmpl": _template_data(f.data)} for f in c.files]
    return task


def _template_data(data: str) -> str:
    # What the heredoc holds once HCL has read it: consul-template's own "{{" is still
    # escaped for consul-template (it would render it), and the heredoc ends with a newline.
    return data.replace("{{", '{{ "{{" }}') + "\n"
