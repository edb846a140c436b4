"""Placement on the mixed fleet: constraints, devices, exhaustion, blocked evals, unblocking."""

from __future__ import annotations

import copy

import httpx

from tests.support.nomad_double import ManualRunner, NomadDouble, gpu_fleet, mixed_fleet

from .helpers import allocs, blocked_eval, cpu_job, evals, gpu_job, register

NVIDIA = {"LTarget": "${meta.heteroflow.gpu.vendor}", "RTarget": "nvidia", "Operand": "="}


def memory_at_least(text: str) -> dict[str, str]:
    return {"LTarget": "${device.attr.memory}", "Operand": ">=", "RTarget": text}


async def node_names(client: httpx.AsyncClient, job_id: str) -> list[str]:
    return sorted(a["NodeName"] for a in await allocs(client, job_id)
                  if a["DesiredStatus"] == "run")


class TestDevices:
    async def test_unit_aware_device_constraint(self, client: httpx.AsyncClient) -> None:
        # 81920 MiB is exactly 80 GiB (A100); the H100 reports 81559 MiB, just under.
        await register(client, gpu_job("big", device_constraints=[memory_at_least("80 GiB")]))
        assert await node_names(client, "big") == ["gpu-a100-01"]
        await register(client, gpu_job("mid", count=2, max_parallel=0,
                                       device_constraints=[memory_at_least("40 GiB")],
                                       constraints=[{"Operand": "distinct_hosts"}]))
        assert await node_names(client, "mid") == ["gpu-a100-01", "gpu-h100-01"]

    async def test_device_model_and_assigned_ids(self, client: httpx.AsyncClient) -> None:
        await register(client, gpu_job("h100", gpus=2, device="nvidia/gpu/NVIDIA H100 80GB HBM3"))
        [stub] = await allocs(client, "h100")
        alloc = (await client.get(f"/v1/allocation/{stub['ID']}")).json()
        [device] = alloc["AllocatedResources"]["Tasks"]["engine"]["Devices"]
        assert (device["Vendor"], device["Type"], device["Name"]) == (
            "nvidia", "gpu", "NVIDIA H100 80GB HBM3")
        node = (await client.get(f"/v1/node/{alloc['NodeID']}")).json()
        instances = {i["ID"] for i in node["NodeResources"]["Devices"][0]["Instances"]}
        assert len(device["DeviceIDs"]) == 2 and set(device["DeviceIDs"]) <= instances
        await register(client, gpu_job("h100-b", gpus=2,
                                       device="nvidia/gpu/NVIDIA H100 80GB HBM3"))
        [other] = await allocs(client, "h100-b")
        other_alloc = (await client.get(f"/v1/allocation/{other['ID']}")).json()
        taken = other_alloc["AllocatedResources"]["Tasks"]["engine"]["Devices"][0]["DeviceIDs"]
        assert not set(taken) & set(device["DeviceIDs"])

    async def test_no_matching_gpu_is_missing_devices(self, client: httpx.AsyncClient) -> None:
        await register(client, gpu_job("v100", device="nvidia/gpu/Tesla V100-SXM2-32GB"))
        assert await allocs(client, "v100") == []
        blocked = await blocked_eval(client, "v100")
        metric = blocked["FailedTGAllocs"]["server"]
        assert metric["ConstraintFiltered"] == {"missing devices": 8}
        assert (metric["NodesEvaluated"], metric["NodesFiltered"]) == (8, 8)
        assert metric["NodesAvailable"] == {"dc1": 8} and metric["NodesExhausted"] == 0
        assert blocked["TriggeredBy"] == "queued-allocs"
        assert blocked["StatusDescription"] == "created to place remaining allocations"
        [first] = [e for e in await evals(client, "v100") if e["Status"] == "complete"]
        assert first["BlockedEval"] == blocked["ID"] and blocked["PreviousEval"] == first["ID"]
        assert first["FailedTGAllocs"] == blocked["FailedTGAllocs"]
        assert first["QueuedAllocations"] == {"server": 1}
        summary = (await client.get("/v1/job/v100/summary")).json()
        assert summary["Summary"]["server"]["Queued"] == 1

    async def test_exhaustion_blocks_and_freeing_unblocks(self, client: httpx.AsyncClient,
                                                           double: NomadDouble) -> None:
        whole = [memory_at_least("80 GiB")]
        await register(client, gpu_job("first", gpus=8, device_constraints=whole))
        [first] = await allocs(client, "first")
        double.set_alloc_status(first["ID"], "running", healthy=True)
        await register(client, gpu_job("second", gpus=8, device_constraints=whole))
        blocked = await blocked_eval(client, "second")
        metric = blocked["FailedTGAllocs"]["server"]
        assert metric["DimensionExhausted"] == {"devices: no devices match request": 1}
        assert metric["NodesExhausted"] == 1
        assert metric["ConstraintFiltered"] == {"missing devices": 7}
        await client.delete("/v1/job/first")
        [placed] = await allocs(client, "second")
        assert placed["NodeName"] == "gpu-a100-01"
        assert (await client.get(f"/v1/evaluation/{blocked['ID']}")).json()["Status"] == \
            "complete"
        summary = (await client.get("/v1/job/second/summary")).json()
        assert summary["Summary"]["server"]["Queued"] == 0

    async def test_failed_alloc_frees_gpus(self, client: httpx.AsyncClient,
                                           double: NomadDouble) -> None:
        job = gpu_job("first", gpus=8, device_constraints=[memory_at_least("80 GiB")])
        job["TaskGroups"][0]["ReschedulePolicy"] = {"Attempts": 0, "Unlimited": False}
        await register(client, job)
        await register(client, gpu_job("second", gpus=8,
                                       device_constraints=[memory_at_least("80 GiB")]))
        assert await allocs(client, "second") == []
        [first] = await allocs(client, "first")
        double.set_alloc_status(first["ID"], "failed", exit_code=137)
        assert [a["NodeName"] for a in await allocs(client, "second")] == ["gpu-a100-01"]
        failed = (await client.get(f"/v1/allocation/{first['ID']}")).json()
        events = [e["Type"] for e in failed["TaskStates"]["engine"]["Events"]]
        assert events[-2:] == ["Terminated", "Not Restarting"]
        assert failed["TaskStates"]["engine"]["Events"][-2]["Details"]["exit_code"] == "137"


class TestNodeConstraints:
    async def test_meta_only_vendors(self, client: httpx.AsyncClient) -> None:
        for vendor, node in (("amd", "gpu-mi300x-01"), ("ascend", "npu-ascend-01"),
                             ("musa", "gpu-musa-01"), ("hygon", "gpu-dcu-01")):
            job = gpu_job(f"on-{vendor}", gpus=0, constraints=[
                {"LTarget": "${meta.heteroflow.gpu.vendor}", "RTarget": vendor, "Operand": "="},
                {"LTarget": "${meta.heteroflow.gpu.count}", "RTarget": "8", "Operand": ">="}])
            await register(client, job)
            assert await node_names(client, f"on-{vendor}") == [node]

    async def test_version_and_set_constraints(self, client: httpx.AsyncClient) -> None:
        await register(client, gpu_job("cc9", constraints=[
            NVIDIA, {"LTarget": "${meta.heteroflow.gpu.cc}", "Operand": "version",
                     "RTarget": ">= 9.0"}]))
        assert await node_names(client, "cc9") == ["gpu-h100-01"]
        await register(client, gpu_job("llama", constraints=[
            {"LTarget": "${meta.heteroflow.models}", "Operand": "set_contains",
             "RTarget": "llama3-8b"},
            {"LTarget": "${meta.heteroflow.engines}", "Operand": "set_contains_any",
             "RTarget": "llamacpp"},
            {"LTarget": "${meta.heteroflow.gpu.cc}", "Operand": "<", "RTarget": "7.5"}]))
        assert await node_names(client, "llama") == ["gpu-p100-01"]
        await register(client, gpu_job("rt", constraints=[
            {"LTarget": "${attr.driver.docker.runtimes}", "Operand": "regexp",
             "RTarget": "nvidia"},
            {"LTarget": "${attr.consul.version}", "Operand": "semver", "RTarget": ">= 1.8.0"},
            {"LTarget": "${node.unique.name}", "Operand": "=", "RTarget": "gpu-a100-01"}]))
        assert await node_names(client, "rt") == ["gpu-a100-01"]

    async def test_unmet_constraint_is_rendered_like_nomad(
            self, client: httpx.AsyncClient) -> None:
        await register(client, cpu_job("arm"))
        await client.delete("/v1/job/arm", params={"purge": "true"})
        job = cpu_job("arm")
        job["Constraints"] = [{"LTarget": "${attr.cpu.arch}", "RTarget": "arm64",
                               "Operand": "="}]
        await register(client, job)
        metric = (await blocked_eval(client, "arm"))["FailedTGAllocs"]["server"]
        assert metric["ConstraintFiltered"] == {"${attr.cpu.arch} = arm64": 8}

    async def test_cpu_memory_exhaustion(self, client: httpx.AsyncClient) -> None:
        await register(client, cpu_job("huge", memory=3_000_000))
        metric = (await blocked_eval(client, "huge"))["FailedTGAllocs"]["server"]
        assert metric["DimensionExhausted"] == {"memory": 8}
        await register(client, cpu_job("hot", cpu=10_000_000))
        metric = (await blocked_eval(client, "hot"))["FailedTGAllocs"]["server"]
        assert metric["DimensionExhausted"] == {"cpu": 8}

    async def test_meta_change_and_new_node_unblock(self, client: httpx.AsyncClient,
                                                   double: NomadDouble) -> None:
        wants_model = [{"LTarget": "${meta.heteroflow.models}", "Operand": "set_contains",
                        "RTarget": "DeepSeek-R1"}]
        await register(client, gpu_job("ds", constraints=wants_model))
        assert await allocs(client, "ds") == []
        node_id = next(n["ID"] for n in (await client.get("/v1/nodes")).json()
                       if n["Name"] == "gpu-h100-01")
        response = await client.post("/v1/client/metadata", json={
            "NodeID": node_id,
            "Meta": {"heteroflow.models": "Qwen2.5-7B-Instruct,DeepSeek-R1"}})
        assert response.status_code == 200
        assert response.json()["Dynamic"]["heteroflow.models"].endswith("DeepSeek-R1")
        assert await node_names(client, "ds") == ["gpu-h100-01"]
        job = cpu_job("arm")
        job["Constraints"] = [{"LTarget": "${attr.cpu.arch}", "RTarget": "arm64",
                               "Operand": "="}]
        await register(client, job)
        node = copy.deepcopy(mixed_fleet()[0])
        node.update(ID="0b0f4f39-8f0e-4e6f-9a33-1a2b3c4d5e6f", Name="arm-01")
        node["Attributes"]["cpu.arch"] = "arm64"
        double.add_node(node)
        assert await node_names(client, "arm") == ["arm-01"]


class TestScoring:
    async def test_affinity_and_spread(self, client: httpx.AsyncClient) -> None:
        job = gpu_job("aff", device_constraints=[memory_at_least("40 GiB")])
        job["Affinities"] = [{"LTarget": "${meta.heteroflow.gpu.model}", "Operand": "=",
                              "RTarget": "NVIDIA H100 80GB HBM3", "Weight": 100}]
        await register(client, job)
        assert await node_names(client, "aff") == ["gpu-h100-01"]
        spread = gpu_job("spread", count=2, max_parallel=0, constraints=[NVIDIA],
                         device_constraints=[memory_at_least("40 GiB")])
        spread["TaskGroups"][0]["Spreads"] = [{"Attribute": "${node.unique.id}", "Weight": 100}]
        await register(client, spread)
        assert await node_names(client, "spread") == ["gpu-a100-01", "gpu-h100-01"]

    async def test_binpack_fills_a_node_first(self, client: httpx.AsyncClient) -> None:
        job = gpu_job("pack", count=4, max_parallel=0, constraints=[NVIDIA],
                      device_constraints=[memory_at_least("80 GiB")])
        await register(client, job)
        assert await node_names(client, "pack") == ["gpu-a100-01"] * 4


class TestComputedClass:
    async def test_identical_nodes_share_eligibility(self) -> None:
        # Nomad 1.6 fingerprints `nomad.advertise.address` (per node), so every node is its own
        # class; newer agents call it `unique.advertise.address` and identical nodes share one.
        nodes = gpu_fleet(4)
        for node in nodes:
            attributes = node["Attributes"]
            attributes["unique.advertise.address"] = attributes.pop("nomad.advertise.address")
        async with NomadDouble(nodes=nodes, runner=ManualRunner()) as double, \
                httpx.AsyncClient(base_url=double.address) as client:
            await register(client, gpu_job("amd", gpus=0, constraints=[
                {"LTarget": "${meta.heteroflow.gpu.vendor}", "RTarget": "amd",
                 "Operand": "="}]))
            metric = (await blocked_eval(client, "amd"))["FailedTGAllocs"]["server"]
            assert metric["ConstraintFiltered"] == {
                "${meta.heteroflow.gpu.vendor} = amd": 1, "computed class ineligible": 3}
            await register(client, gpu_job("pinned", gpus=0, constraints=[
                {"LTarget": "${node.unique.name}", "RTarget": "elsewhere", "Operand": "="}]))
            metric = (await blocked_eval(client, "pinned"))["FailedTGAllocs"]["server"]
            assert metric["ConstraintFiltered"] == {"${node.unique.name} = elsewhere": 4}

    async def test_nomad_16_nodes_are_each_their_own_class(self) -> None:
        async with NomadDouble(nodes=gpu_fleet(4), runner=ManualRunner()) as double, \
                httpx.AsyncClient(base_url=double.address) as client:
            await register(client, gpu_job("amd", gpus=0, constraints=[
                {"LTarget": "${meta.heteroflow.gpu.vendor}", "RTarget": "amd",
                 "Operand": "="}]))
            metric = (await blocked_eval(client, "amd"))["FailedTGAllocs"]["server"]
            assert metric["ConstraintFiltered"] == {"${meta.heteroflow.gpu.vendor} = amd": 4}
