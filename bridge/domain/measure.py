"""One sample of a service's scaling metric, from the signals measured where they arise.

| metric                  | source                                                      |
|-------------------------|-------------------------------------------------------------|
| concurrent_requests     | gateways: requests a backend of the service works on (sum)  |
| request_queue           | gateways: requests held for the service to wake (sum)       |
| gpu_utilization         | agents: utilisation of the GPUs the running tasks hold      |
| cpu                     | agents: the node's CPU use (facts.cpu_percent)              |
| vllm_pending_requests   | the engine: vllm:num_requests_waiting (SGLang, llama.cpp:   |
|                         | their equivalents), read by its agent                       |
| vllm_running_requests   | the engine: vllm:num_requests_running (likewise)            |

Per replica: the total over the running replicas divided by their number. Whatever is not
measured is ``missing`` with the reason; no value is ever made up for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# metric -> the common name agents report it under (agent_plugin/engine_metrics.py): vLLM's
# vllm:num_requests_waiting/_running, and SGLang's and llama.cpp's equivalents
ENGINE_METRICS = {"vllm_pending_requests": "waiting", "vllm_running_requests": "running"}


@dataclass(frozen=True, slots=True)
class Replica:
    task_id: str
    node_id: str | None
    gpu_ids: tuple[str, ...]
    engine_metrics: dict[str, float] | None  # as the agent last scraped them; None: none
    engine_missing: str = ""  # why engine_metrics is None


@dataclass(frozen=True, slots=True)
class Sample:
    value: float | None  # per replica
    missing: str = ""


def sample(metric: str, replicas: list[Replica], *, gateways: int, inflight: int, waiting: int,
           nodes: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]]) -> Sample:
    if not replicas:
        return Sample(None, "no replica is running")
    n = len(replicas)
    if metric in ("concurrent_requests", "request_queue"):
        if gateways == 0:
            return Sample(None, "no gateway has published its counters recently")
        total = inflight if metric == "concurrent_requests" else waiting
        return Sample(total / n)
    if metric in ENGINE_METRICS:
        name = ENGINE_METRICS[metric]
        values = [r.engine_metrics.get(name) if r.engine_metrics else None for r in replicas]
        lacking = [r for r, v in zip(replicas, values, strict=True) if v is None]
        if lacking:
            why = lacking[0].engine_missing or f"its engine reports no {name} requests"
            return Sample(None, f"{lacking[0].task_id}: {why}")
        return Sample(sum(v for v in values if v is not None) / n)
    if metric == "gpu_utilization":
        utils: list[float] = []
        for r in replicas:
            gpus = nodes.get(r.node_id or "", ([], {}))[0]
            for gid in r.gpu_ids:
                found = [g.get("utilization_percent") for g in gpus
                         if str(g.get("index")) == gid or g.get("uuid") == gid]
                if not found or found[0] is None:
                    return Sample(None, f"no utilisation reported for GPU {gid} of {r.task_id}")
                utils.append(float(found[0]))
            if not r.gpu_ids:
                return Sample(None, f"{r.task_id} holds no GPU")
        return Sample(sum(utils) / len(utils))
    if metric == "cpu":
        cpus: list[float] = []
        for r in replicas:
            facts = nodes.get(r.node_id or "", ([], {}))[1]
            value = facts.get("cpu_percent")
            if not isinstance(value, int | float):
                return Sample(None, f"the node of {r.task_id} reports no CPU use")
            cpus.append(float(value))
        return Sample(sum(cpus) / n)
    return Sample(None, f"unknown metric {metric}")
