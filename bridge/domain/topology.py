"""Deployment modes: how a TaskGroup turns into nodes, tasks and GPUs per task.

The seed's table (docs/product.md, "Creating a service"), with one change where real
engines disagree with it:

| mode            | node_count          | task_count  | GPUs per task |
|-----------------|---------------------|-------------|---------------|
| none (single)   | 1                   | 1           | gpu_required  |
| tensor_parallel | 1 (forced)          | 1           | world_size    |
| split           | ceil(world_size/8)  | world_size  | 1 (fixed)     |
| data_parallel   | ceil(world_size/8)  | world_size  | gpu_required  |

Tensor parallel: the seed lists ``world_size`` tasks of ``gpu_required`` GPUs. vLLM and SGLang
run tensor parallelism as *one* server process that spans its GPUs
(``--tensor-parallel-size N`` / ``--tp-size N``); N containers of N GPUs each would hold N²
GPUs and start N unrelated servers. So TP is one task (rank 0, the master) holding all
``world_size`` GPUs of one node, which is what "all GPUs on one node" means in practice.

Split and data parallel: the node count at creation is the smallest number of 8-GPU nodes
that can hold the replicas; placement reports the real spread once tasks land.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

GPUS_PER_NODE = 8
MAX_GPUS_PER_TASK = 64
MAX_WORLD_SIZE = 512


class Parallelism(StrEnum):
    NONE = "none"
    TENSOR_PARALLEL = "tensor_parallel"
    SPLIT = "split"
    DATA_PARALLEL = "data_parallel"


@dataclass(frozen=True, slots=True)
class Topology:
    parallelism: Parallelism
    world_size: int
    node_count: int
    task_count: int
    gpus_per_task: int


class TopologyError(ValueError):
    """The numbers given cannot make a deployment of this mode; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def plan_topology(
    parallelism: Parallelism, gpu_required: int, world_size: int | None
) -> Topology:
    """Compute node count, task count and GPUs per task for one deployment mode."""
    if parallelism is Parallelism.NONE:
        if world_size not in (None, 1):
            raise TopologyError(
                "world_size", "a single-GPU service has world_size 1; use tensor_parallel, "
                "split or data_parallel for more"
            )
        return Topology(parallelism, 1, 1, 1, gpu_required)

    if parallelism is Parallelism.TENSOR_PARALLEL:
        size = world_size if world_size is not None else gpu_required
        if gpu_required == 0:
            raise TopologyError("gpu_required", "tensor_parallel needs GPUs; gpu_required is 0")
        if world_size is not None and gpu_required not in (1, world_size):
            raise TopologyError(
                "gpu_required", f"tensor_parallel puts all world_size={world_size} GPUs in one "
                f"task; gpu_required={gpu_required} disagrees (omit it or make it equal)"
            )
        if size < 1 or size > GPUS_PER_NODE:
            raise TopologyError(
                "world_size", f"tensor_parallel keeps all GPUs on one node, so world_size must "
                f"be 1-{GPUS_PER_NODE}, got {size}"
            )
        return Topology(parallelism, size, 1, 1, size)

    if world_size is None:
        raise TopologyError("world_size", f"{parallelism.value} needs world_size (replica count)")
    if not 1 <= world_size <= MAX_WORLD_SIZE:
        raise TopologyError(
            "world_size", f"world_size must be 1-{MAX_WORLD_SIZE}, got {world_size}"
        )
    nodes = math.ceil(world_size / GPUS_PER_NODE)
    if parallelism is Parallelism.SPLIT:
        # One GPU per replica, fixed; a CPU-only service (gpu_required 0) stays CPU-only.
        return Topology(parallelism, world_size, nodes, world_size, min(1, gpu_required))
    return Topology(parallelism, world_size, nodes, world_size, gpu_required)
