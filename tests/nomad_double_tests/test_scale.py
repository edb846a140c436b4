"""The double stays fast: 1,000 one-GPU jobs placed on a 200-node fleet in seconds."""

from __future__ import annotations

import time
from collections import Counter

import httpx

from tests.support.nomad_double import ManualRunner, NomadDouble, gpu_fleet

from .helpers import blocked_eval, gpu_job, register


async def test_thousand_gpu_jobs_on_two_hundred_nodes() -> None:
    async with NomadDouble(nodes=gpu_fleet(200, gpus_per_node=8),
                           runner=ManualRunner()) as double, \
            httpx.AsyncClient(base_url=double.address, timeout=30) as client:
        started = time.perf_counter()
        for number in range(1000):
            await register(client, gpu_job(f"job-{number:04d}"))
        elapsed = time.perf_counter() - started
        listed = (await client.get("/v1/allocations", params={"resources": "true"})).json()
        assert len(listed) == 1000
        device_ids = [i for a in listed
                      for d in a["AllocatedResources"]["Tasks"]["engine"]["Devices"]
                      for i in d["DeviceIDs"]]
        assert len(device_ids) == len(set(device_ids)) == 1000
        per_node = Counter(a["NodeID"] for a in listed)
        assert max(per_node.values()) <= 8
        assert (await client.get("/v1/evaluations",
                                 params={"status": "blocked"})).json() == []
        # A few seconds on a loaded two-core machine; minutes would mean an O(n^2) regression.
        assert elapsed < 20, f"placing 1,000 jobs took {elapsed:.1f}s"


async def test_full_fleet_blocks_with_device_exhaustion() -> None:
    async with NomadDouble(nodes=gpu_fleet(2, gpus_per_node=8),
                           runner=ManualRunner()) as double, \
            httpx.AsyncClient(base_url=double.address) as client:
        for number in range(16):
            await register(client, gpu_job(f"job-{number:02d}"))
        await register(client, gpu_job("one-too-many"))
        metric = (await blocked_eval(client, "one-too-many"))["FailedTGAllocs"]["server"]
        assert metric["DimensionExhausted"] == {"devices: no devices match request": 2}
        assert metric["NodesExhausted"] == 2 and metric["ConstraintFiltered"] is None
