"""Allocation lifecycle: deployments and rolling updates, rescheduling, runners."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support.nomad_double import AutoRunner, NomadDouble, mixed_fleet

from .helpers import allocs, cpu_job, evals, eventually, gpu_job, register

MS = 1_000_000


async def live(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    return [a for a in await allocs(client, job_id) if a["DesiredStatus"] == "run"]


class TestDeployments:
    async def test_rolling_update_one_at_a_time(self, client: httpx.AsyncClient,
                                                double: NomadDouble) -> None:
        await register(client, cpu_job("web", count=3, max_parallel=1))
        for alloc in await live(client, "web"):
            double.set_alloc_status(alloc["ID"], "running", healthy=True)
        first = (await client.get("/v1/job/web/deployment")).json()
        assert first["Status"] == "successful" and first["JobVersion"] == 0
        assert first["StatusDescription"] == "Deployment completed successfully"

        await register(client, cpu_job("web", count=3, max_parallel=1, cpu=600))
        second = (await client.get("/v1/job/web/deployment")).json()
        assert (second["Status"], second["JobVersion"]) == ("running", 1)
        for step in range(1, 4):
            current = await live(client, "web")
            new = [a for a in current if a["JobVersion"] == 1]
            assert len(current) == 3 and len(new) == step
            [fresh] = [a for a in new if a["ClientStatus"] == "pending"]
            assert fresh["DeploymentStatus"] is None
            double.set_alloc_status(fresh["ID"], "running", healthy=True)
        final = (await client.get(f"/v1/deployment/{second['ID']}")).json()
        assert final["Status"] == "successful"
        assert final["TaskGroups"]["server"]["HealthyAllocs"] == 3
        stopped = [a for a in await allocs(client, "web") if a["DesiredStatus"] == "stop"]
        assert len(stopped) == 3 and {a["DesiredDescription"] for a in stopped} == {
            "alloc is being updated due to job update"}
        assert {e["TriggeredBy"] for e in await evals(client, "web")} >= {
            "job-register", "deployment-watcher"}
        listed = (await client.get("/v1/job/web/deployments")).json()
        assert [d["JobVersion"] for d in listed] == [1, 0]

    async def test_unhealthy_alloc_fails_the_deployment(self, client: httpx.AsyncClient,
                                                         double: NomadDouble) -> None:
        await register(client, cpu_job("web", count=2, max_parallel=1))
        for alloc in await live(client, "web"):
            double.set_alloc_status(alloc["ID"], "running", healthy=True)
        await register(client, cpu_job("web", count=2, max_parallel=1, cpu=700))
        [fresh] = [a for a in await live(client, "web") if a["JobVersion"] == 1]
        double.set_alloc_status(fresh["ID"], "running", healthy=False)
        deployment = (await client.get("/v1/job/web/deployment")).json()
        assert deployment["Status"] == "failed"
        assert deployment["StatusDescription"] == "Failed due to unhealthy allocations"
        assert deployment["TaskGroups"]["server"]["UnhealthyAllocs"] == 1
        versions = sorted(a["JobVersion"] for a in await live(client, "web"))
        assert versions == [0, 1]

    async def test_fail_and_promote_endpoints(self, client: httpx.AsyncClient) -> None:
        await register(client, cpu_job("web", max_parallel=1))
        deployment = (await client.get("/v1/job/web/deployment")).json()
        mismatch = await client.post(f"/v1/deployment/promote/{deployment['ID']}",
                                     json={"DeploymentID": "other", "All": True})
        assert (mismatch.status_code, mismatch.text) == (400, "Deployment ID does not match")
        promoted = await client.post(f"/v1/deployment/promote/{deployment['ID']}",
                                     json={"DeploymentID": deployment["ID"], "All": True})
        assert promoted.status_code == 200
        failed = await client.post(f"/v1/deployment/fail/{deployment['ID']}")
        assert failed.status_code == 200
        assert set(failed.json()) >= {"EvalID", "EvalCreateIndex", "DeploymentModifyIndex",
                                      "Index"}
        body = (await client.get(f"/v1/deployment/{deployment['ID']}")).json()
        assert (body["Status"], body["StatusDescription"]) == (
            "failed", "Deployment marked as failed")
        again = await client.post(f"/v1/deployment/fail/{deployment['ID']}")
        assert (again.status_code, again.text) == (
            500, f'deployment "{deployment["ID"]}" is terminal')
        missing = await client.get("/v1/deployment/00000000-0000-0000-0000-000000000000")
        assert (missing.status_code, missing.text) == (404, "deployment not found")

    async def test_progress_deadline(self, client: httpx.AsyncClient) -> None:
        job = gpu_job("stuck", gpus=16)
        job["Update"]["ProgressDeadline"] = 300 * MS
        await register(client, job)
        deployment = (await client.get("/v1/job/stuck/deployment")).json()
        assert deployment["Status"] == "running"

        async def failed() -> bool:
            body = (await client.get(f"/v1/deployment/{deployment['ID']}")).json()
            return bool(body["Status"] == "failed"
                        and body["StatusDescription"] == "Failed due to progress deadline")

        await eventually(failed, within=3)


class TestRescheduling:
    async def test_failed_alloc_is_rescheduled_after_delay(
            self, client: httpx.AsyncClient, double: NomadDouble) -> None:
        job = cpu_job("web")
        job["TaskGroups"][0]["ReschedulePolicy"] = {"Delay": 200 * MS, "Unlimited": True,
                                                    "DelayFunction": "constant"}
        await register(client, job)
        [alloc] = await allocs(client, "web")
        double.set_alloc_status(alloc["ID"], "failed", exit_code=2)
        failed = (await client.get(f"/v1/allocation/{alloc['ID']}")).json()
        assert failed["FollowupEvalID"]
        followup = (await client.get(f"/v1/evaluation/{failed['FollowupEvalID']}")).json()
        assert followup["Status"] == "pending" and followup["WaitUntil"] != \
            "0001-01-01T00:00:00Z"
        assert len(await live(client, "web")) == 1

        async def replaced() -> list[dict[str, Any]]:
            return [a for a in await live(client, "web") if a["ID"] != alloc["ID"]]

        [new] = await eventually(replaced, within=3)
        full = (await client.get(f"/v1/allocation/{new['ID']}")).json()
        assert full["PreviousAllocation"] == alloc["ID"] and full["Name"] == alloc["Name"]
        [event] = full["RescheduleTracker"]["Events"]
        assert event["PrevAllocID"] == alloc["ID"] and event["Delay"] == 200 * MS
        old = (await client.get(f"/v1/allocation/{alloc['ID']}")).json()
        assert old["NextAllocation"] == new["ID"]
        assert old["DesiredDescription"] == "alloc was rescheduled because it failed"

    async def test_no_reschedule_attempts_left(self, client: httpx.AsyncClient,
                                               double: NomadDouble) -> None:
        job = cpu_job("batchy")
        job["TaskGroups"][0]["ReschedulePolicy"] = {"Attempts": 0, "Unlimited": False}
        await register(client, job)
        [alloc] = await allocs(client, "batchy")
        double.set_alloc_status(alloc["ID"], "failed")
        await asyncio.sleep(0.05)
        assert [a["ID"] for a in await allocs(client, "batchy")] == [alloc["ID"]]
        summary = (await client.get("/v1/job/batchy/summary")).json()
        assert summary["Summary"]["server"]["Failed"] == 1


async def test_auto_runner_runs_and_deploys() -> None:
    async with NomadDouble(nodes=mixed_fleet(), runner=AutoRunner()) as double, \
            httpx.AsyncClient(base_url=double.address) as client:
        await register(client, gpu_job("auto", count=2, max_parallel=1))
        states = {(a["ClientStatus"], (a["DeploymentStatus"] or {}).get("Healthy"))
                  for a in await allocs(client, "auto")}
        assert states == {("running", True)}
        full = (await client.get(f"/v1/allocation/{(await allocs(client, 'auto'))[0]['ID']}"))
        events = [e["Type"] for e in full.json()["TaskStates"]["engine"]["Events"]]
        assert events == ["Received", "Task Setup", "Driver", "Started"]
        assert (await client.get("/v1/job/auto/deployment")).json()["Status"] == "successful"
        await client.delete("/v1/job/auto")
        assert {a["ClientStatus"] for a in await allocs(client, "auto")} == {"complete"}
        killed = (await client.get(f"/v1/allocation/{full.json()['ID']}")).json()
        assert [e["Type"] for e in killed["TaskStates"]["engine"]["Events"]][-2:] == [
            "Killing", "Killed"]


async def test_manual_events_and_health(client: httpx.AsyncClient,
                                        double: NomadDouble) -> None:
    await register(client, cpu_job("web", max_parallel=1))
    [alloc] = await allocs(client, "web")
    updated = double.set_alloc_status(alloc["ID"], "pending", events=[
        {"Type": "Driver", "Message": "Downloading image vllm/vllm-openai:v0.6.0"}])
    assert updated["TaskStates"]["engine"]["Events"][-1]["DisplayMessage"].startswith(
        "Downloading image")
    double.set_alloc_status(alloc["ID"], "running", healthy=True)
    body = (await client.get(f"/v1/allocation/{alloc['ID']}")).json()
    assert body["DeploymentStatus"]["Healthy"] is True
    assert body["ClientDescription"] == "Tasks are running"
