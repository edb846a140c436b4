"""Node endpoints, dynamic node metadata, and how node state shapes placement."""

from __future__ import annotations

import copy

import httpx

from tests.support.nomad_double import NomadDouble, mixed_fleet

from .helpers import allocs, blocked_eval, cpu_job, gpu_job, register


async def node_id(client: httpx.AsyncClient, name: str) -> str:
    nodes = (await client.get("/v1/nodes")).json()
    return str(next(n["ID"] for n in nodes if n["Name"] == name))


class TestNodeEndpoints:
    async def test_stubs_and_resources(self, client: httpx.AsyncClient) -> None:
        stubs = (await client.get("/v1/nodes")).json()
        assert len(stubs) == 8 and "NodeResources" not in stubs[0]
        assert {"Address", "Datacenter", "Drivers", "NodePool", "Status", "Version"} <= set(
            stubs[0])
        full = (await client.get("/v1/nodes", params={"resources": "true"})).json()
        a100 = next(n for n in full if n["Name"] == "gpu-a100-01")
        device = a100["NodeResources"]["Devices"][0]
        assert device["Attributes"]["memory"]["Unit"] == "MiB"
        node = (await client.get(f"/v1/node/{a100['ID']}")).json()
        assert node["Meta"]["heteroflow.gpu.vendor"] == "nvidia"
        assert node["Attributes"]["driver.docker"] == "1"
        filtered = (await client.get("/v1/nodes", params={
            "filter": 'Meta["heteroflow.gpu.vendor"] == "amd"'})).json()
        assert [n["Name"] for n in filtered] == ["gpu-mi300x-01"]
        missing = await client.get("/v1/node/nope")
        assert (missing.status_code, missing.text) == (404, "node not found")

    async def test_dynamic_metadata(self, client: httpx.AsyncClient) -> None:
        target = await node_id(client, "gpu-h100-01")
        read = (await client.get("/v1/client/metadata", params={"node_id": target})).json()
        assert set(read) == {"Meta", "Dynamic", "Static"}
        assert read["Dynamic"]["heteroflow.gpu.count"] == "8"
        assert "heteroflow.agent" not in read["Static"]
        assert read["Static"]["connect.log_level"] == "info"
        applied = await client.post("/v1/client/metadata", params={"node_id": target}, json={
            "Meta": {"heteroflow.gpu.count": "7", "heteroflow.engines": None,
                     "connect.log_level": None}})
        assert applied.status_code == 200
        body = applied.json()
        assert body["Meta"]["heteroflow.gpu.count"] == "7"
        assert "heteroflow.engines" not in body["Meta"] and "heteroflow.engines" not in \
            body["Dynamic"]
        assert "connect.log_level" not in body["Meta"]
        assert body["Dynamic"]["connect.log_level"] is None
        node = (await client.get(f"/v1/node/{target}")).json()
        assert node["Meta"]["heteroflow.gpu.count"] == "7"

    async def test_metadata_errors(self, client: httpx.AsyncClient) -> None:
        target = await node_id(client, "cpu-01")
        bad_key = await client.post("/v1/client/metadata", json={
            "NodeID": target, "Meta": {"gpu/cc": "9.0"}})
        assert (bad_key.status_code, bad_key.text) == (
            400, '"gpu/cc" is invalid; metadata keys must be valid dotted hcl identifiers')
        empty = await client.post("/v1/client/metadata", json={"NodeID": target, "Meta": {}})
        assert (empty.status_code, empty.text) == (400, "missing required Meta object")
        no_node = await client.get("/v1/client/metadata")
        assert (no_node.status_code, no_node.text) == (
            400, "No local Node and node_id not provided")


class TestNodeStateAndPlacement:
    async def test_ineligible_nodes_are_not_candidates(self, client: httpx.AsyncClient) -> None:
        for node in (await client.get("/v1/nodes")).json():
            response = await client.post(f"/v1/node/{node['ID']}/eligibility",
                                         json={"Eligibility": "ineligible"})
            assert response.status_code == 200
        await register(client, cpu_job("web"))
        metric = (await blocked_eval(client, "web"))["FailedTGAllocs"]["server"]
        assert (metric["NodesEvaluated"], metric["NodesAvailable"]) == (0, {})
        cpu = await node_id(client, "cpu-01")
        await client.post(f"/v1/node/{cpu}/eligibility", json={"Eligibility": "eligible"})
        assert [a["NodeName"] for a in await allocs(client, "web")] == ["cpu-01"]

    async def test_datacenter_mismatch(self, client: httpx.AsyncClient) -> None:
        job = cpu_job("far")
        job["Datacenters"] = ["dc2"]
        await register(client, job)
        metric = (await blocked_eval(client, "far"))["FailedTGAllocs"]["server"]
        assert (metric["NodesEvaluated"], metric["NodesInPool"]) == (0, 8)

    async def test_missing_docker_driver(self, double: NomadDouble,
                                         client: httpx.AsyncClient) -> None:
        node = copy.deepcopy(mixed_fleet()[0])
        node.update(ID="7d6c5b4a-0000-4000-8000-000000000001", Name="no-docker")
        node["Drivers"]["docker"].update(Detected=False, Healthy=False)
        node["Attributes"]["cpu.arch"] = "riscv64"
        double.add_node(node)
        job = cpu_job("riscv")
        job["Constraints"] = [{"LTarget": "${attr.cpu.arch}", "RTarget": "riscv64",
                               "Operand": "="}]
        await register(client, job)
        metric = (await blocked_eval(client, "riscv"))["FailedTGAllocs"]["server"]
        assert metric["ConstraintFiltered"] == {"${attr.cpu.arch} = riscv64": 8,
                                                "missing drivers": 1}

    async def test_unhealthy_gpu_instances_are_not_assigned(self, double: NomadDouble,
                                                            client: httpx.AsyncClient) -> None:
        node = copy.deepcopy(next(n for n in mixed_fleet() if n["Name"] == "gpu-p100-01"))
        node.update(ID="7d6c5b4a-0000-4000-8000-000000000002", Name="p100-sick")
        node["Meta"]["heteroflow.models"] = "sick-model"
        node["NodeResources"]["Devices"][0]["Instances"][0]["Healthy"] = False
        double.add_node(node)
        model = [{"LTarget": "${meta.heteroflow.models}", "RTarget": "sick-model",
                  "Operand": "="}]
        await register(client, gpu_job("two", gpus=2, constraints=model))
        metric = (await blocked_eval(client, "two"))["FailedTGAllocs"]["server"]
        assert metric["ConstraintFiltered"]["missing devices"] == 1
        await register(client, gpu_job("one", gpus=1, device="gpu", constraints=model))
        [stub] = await allocs(client, "one")
        alloc = (await client.get(f"/v1/allocation/{stub['ID']}")).json()
        healthy = node["NodeResources"]["Devices"][0]["Instances"][1]["ID"]
        assert alloc["AllocatedResources"]["Tasks"]["engine"]["Devices"][0]["DeviceIDs"] == [
            healthy]


async def test_allocation_list_filters(client: httpx.AsyncClient, double: NomadDouble) -> None:
    await register(client, cpu_job("a", count=2))
    await register(client, cpu_job("b"))
    [first, _] = await allocs(client, "a")
    double.set_alloc_status(first["ID"], "running")
    found = (await client.get("/v1/allocations", params={
        "filter": 'JobID == "a" and ClientStatus == "running"'})).json()
    assert [a["ID"] for a in found] == [first["ID"]]
    assert "AllocatedResources" not in found[0]
    with_resources = (await client.get("/v1/allocations", params={
        "filter": 'JobID == "b"', "resources": "true"})).json()
    assert with_resources[0]["AllocatedResources"]["Shared"]["DiskMB"] == 300
    prefix = (await client.get("/v1/allocations", params={"prefix": first["ID"][:4]})).json()
    assert first["ID"] in [a["ID"] for a in prefix]
    evals = (await client.get("/v1/evaluations", params={"job": "b"})).json()
    assert {e["JobID"] for e in evals} == {"b"}
    single = (await client.get(f"/v1/evaluation/{evals[0]['ID']}",
                               params={"related": "true"})).json()
    assert single["RelatedEvals"] == []
    missing = await client.get("/v1/evaluation/nope")
    assert (missing.status_code, missing.text) == (404, "eval not found")


async def test_device_affinity_picks_the_preferred_group(double: NomadDouble,
                                                         client: httpx.AsyncClient) -> None:
    fleet = {n["Name"]: n for n in mixed_fleet()}
    node = copy.deepcopy(fleet["gpu-a100-01"])
    node.update(ID="7d6c5b4a-0000-4000-8000-000000000003", Name="two-models")
    node["Meta"]["heteroflow.models"] = "mixed-node-model"
    node["NodeResources"]["Devices"] += copy.deepcopy(fleet["gpu-h100-01"]["NodeResources"][
        "Devices"])
    double.add_node(node)
    job = gpu_job("prefers-h100", constraints=[{"LTarget": "${meta.heteroflow.models}",
                                                "RTarget": "mixed-node-model", "Operand": "="}])
    job["TaskGroups"][0]["Tasks"][0]["Resources"]["Devices"][0]["Affinities"] = [
        {"LTarget": "${device.model}", "Operand": "regexp", "RTarget": "H100", "Weight": 100}]
    await register(client, job)
    [stub] = await allocs(client, "prefers-h100")
    alloc = (await client.get(f"/v1/allocation/{stub['ID']}")).json()
    [device] = alloc["AllocatedResources"]["Tasks"]["engine"]["Devices"]
    assert device["Name"] == "NVIDIA H100 80GB HBM3"
    assert alloc["Metrics"]["ScoreMetaData"][0]["Scores"]["devices"] == 1.0
