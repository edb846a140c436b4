"""Job write and read endpoints: shapes, status codes and Nomad's error texts."""

from __future__ import annotations

import httpx
import pytest

from tests.support.nomad_double import NomadDouble

from .helpers import allocs, cpu_job, evals, gpu_job, register


class TestRegister:
    async def test_response_shape_and_versions(self, client: httpx.AsyncClient) -> None:
        first = await register(client, cpu_job("web"))
        assert set(first) >= {"EvalID", "EvalCreateIndex", "JobModifyIndex", "Warnings",
                              "Index", "LastContact", "KnownLeader"}
        job = (await client.get("/v1/job/web")).json()
        assert (job["Version"], job["JobModifyIndex"]) == (0, first["JobModifyIndex"])
        assert job["Datacenters"] == ["dc1"] and job["NodePool"] == "default"
        again = await register(client, cpu_job("web"))
        assert again["EvalID"] != first["EvalID"]
        assert (await client.get("/v1/job/web")).json()["Version"] == 0
        assert len(await evals(client, "web")) == 2
        changed = await register(client, cpu_job("web", cpu=600))
        job = (await client.get("/v1/job/web")).json()
        assert job["Version"] == 1 and job["JobModifyIndex"] == changed["JobModifyIndex"]
        versions = (await client.get("/v1/job/web/versions")).json()
        assert [v["Version"] for v in versions["Versions"]] == [1, 0]

    async def test_index_headers(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/jobs", json={"Job": cpu_job("web")})
        assert int(response.headers["X-Nomad-Index"]) == response.json()["Index"]
        read = await client.get("/v1/jobs")
        assert read.headers["X-Nomad-KnownLeader"] == "true"
        assert int(read.headers["X-Nomad-Index"]) >= response.json()["Index"]

    async def test_check_and_set(self, client: httpx.AsyncClient) -> None:
        ok = await register(client, cpu_job("cas"), EnforceIndex=True, JobModifyIndex=0)
        exists = await client.put("/v1/jobs", json={"Job": cpu_job("cas"),
                                                    "EnforceIndex": True, "JobModifyIndex": 0})
        assert exists.status_code == 500
        assert exists.text == "Enforcing job modify index 0: job already exists"
        stale = await client.put("/v1/jobs", json={"Job": cpu_job("cas", cpu=700),
                                                   "EnforceIndex": True, "JobModifyIndex": 1})
        assert stale.status_code == 500
        assert stale.text == ("Enforcing job modify index 1: job exists with conflicting job "
                              f"modify index: {ok['JobModifyIndex']}")
        missing = await client.put("/v1/job/nope", json={
            "Job": cpu_job("nope"), "EnforceIndex": True, "JobModifyIndex": 5})
        assert (missing.status_code, missing.text) == (
            500, "Enforcing job modify index 5: job does not exist")
        good = await client.put("/v1/job/cas", json={
            "Job": cpu_job("cas", cpu=700), "EnforceIndex": True,
            "JobModifyIndex": ok["JobModifyIndex"]})
        assert good.status_code == 200

    @pytest.mark.parametrize(("path", "body", "text"), [
        ("/v1/jobs", {"Job": {"Name": "x"}}, "Job ID hasn't been provided"),
        ("/v1/jobs", {"EnforceIndex": True}, "Job must be specified"),
        ("/v1/job/other", {"Job": cpu_job("web")}, "Job ID does not match name"),
        ("/v1/jobs", {"Job": {"ID": "x", "Update": {"MinHealthyTime": "10s"}}},
         "json: cannot unmarshal string into Go struct field"),
    ])
    async def test_bad_requests(self, client: httpx.AsyncClient, path: str, body: object,
                                text: str) -> None:
        response = await client.put(path, json=body)
        assert response.status_code == 400
        assert response.headers["Content-Type"].startswith("text/plain")
        assert response.text.startswith(text)

    async def test_empty_body(self, client: httpx.AsyncClient) -> None:
        response = await client.put("/v1/jobs", content=b"")
        assert (response.status_code, response.text) == (400, "Request body is empty")

    async def test_validation_errors_are_500_multierror(self, client: httpx.AsyncClient) -> None:
        job = cpu_job("bad")
        job["TaskGroups"][0]["Scaling"] = {"Min": 1, "Max": 2}
        job["TaskGroups"][0]["Count"] = 5
        response = await client.put("/v1/jobs", json={"Job": job})
        assert response.status_code == 500
        assert response.text.startswith("1 error occurred:\n\t* Task group server validation "
                                        "failed: 1 error occurred:\n\t* Scaling policy invalid: "
                                        "task group count must not be greater than maximum")

    async def test_unknown_fields_are_ignored(self, client: httpx.AsyncClient) -> None:
        job = cpu_job("lax")
        job["Typo"] = "ignored"
        job["taskgroups"] = job.pop("TaskGroups")
        response = await client.put("/v1/jobs", json={"job": job, "enforceindex": False})
        assert response.status_code == 200
        stored = (await client.get("/v1/job/lax")).json()
        assert "Typo" not in stored and stored["TaskGroups"][0]["Name"] == "server"


class TestReads:
    async def test_not_found_and_methods(self, client: httpx.AsyncClient) -> None:
        missing = await client.get("/v1/job/ghost")
        assert (missing.status_code, missing.text) == (404, "job not found")
        assert "X-Nomad-Index" in missing.headers
        summary = await client.get("/v1/job/ghost/summary")
        assert (summary.status_code, summary.text) == (404, "job not found")
        assert (await client.get("/v1/job/ghost/allocations")).json() == []
        assert (await client.get("/v1/job/ghost/deployment")).json() is None
        assert (await client.get("/v1/nope")).status_code == 404
        wrong = await client.delete("/v1/jobs")
        assert (wrong.status_code, wrong.text) == (405, "Invalid method")

    async def test_list_prefix_and_stub(self, client: httpx.AsyncClient) -> None:
        await register(client, cpu_job("api-a"))
        await register(client, cpu_job("web-b"))
        stubs = (await client.get("/v1/jobs", params={"prefix": "api"})).json()
        assert [s["ID"] for s in stubs] == ["api-a"]
        stub = stubs[0]
        assert stub["JobSummary"]["Summary"]["server"]["Starting"] == 1
        assert "TaskGroups" not in stub and "Meta" not in stub
        with_meta = (await client.get("/v1/jobs", params={"meta": "true"})).json()
        assert "Meta" in with_meta[0]

    async def test_allocation_stubs_lack_allocated_resources(
            self, client: httpx.AsyncClient) -> None:
        await register(client, cpu_job("web", ports=["http"]))
        stubs = await allocs(client, "web")
        assert len(stubs) == 1 and "AllocatedResources" not in stubs[0]
        assert stubs[0]["Name"] == "web.server[0]" and stubs[0]["JobVersion"] == 0
        full = (await client.get(f"/v1/allocation/{stubs[0]['ID']}")).json()
        port = full["AllocatedResources"]["Shared"]["Ports"][0]
        assert port["Label"] == "http" and 20000 <= port["Value"] <= 32000
        node = (await client.get(f"/v1/node/{full['NodeID']}")).json()
        assert port["HostIP"] == node["Attributes"]["unique.network.ip-address"]
        assert full["Job"]["ID"] == "web"
        assert full["TaskStates"]["engine"]["Events"][0]["Type"] == "Received"

    async def test_summary_and_status(self, client: httpx.AsyncClient,
                                      double: NomadDouble) -> None:
        await register(client, cpu_job("web", count=2))
        summary = (await client.get("/v1/job/web/summary")).json()
        assert summary["Summary"]["server"] == {"Queued": 0, "Complete": 0, "Failed": 0,
                                                "Running": 0, "Starting": 2, "Lost": 0,
                                                "Unknown": 0}
        assert (await client.get("/v1/job/web")).json()["Status"] == "running"
        for stub in await allocs(client, "web"):
            double.set_alloc_status(stub["ID"], "running")
        summary = (await client.get("/v1/job/web/summary")).json()
        assert summary["Summary"]["server"]["Running"] == 2


class TestPlan:
    async def test_plan_changes_nothing(self, client: httpx.AsyncClient) -> None:
        before = (await client.get("/v1/jobs")).headers["X-Nomad-Index"]
        response = await client.put("/v1/job/web/plan", json={"Job": cpu_job("web", count=3),
                                                               "Diff": True})
        assert response.status_code == 200
        plan = response.json()
        assert plan["Annotations"]["DesiredTGUpdates"]["server"]["Place"] == 3
        assert plan["FailedTGAllocs"] is None and plan["JobModifyIndex"] == 0
        assert plan["Diff"]["Type"] == "Added"
        assert (await client.get("/v1/jobs")).json() == []
        assert (await client.get("/v1/jobs")).headers["X-Nomad-Index"] == before

    async def test_plan_predicts_failures_and_updates(self, client: httpx.AsyncClient) -> None:
        created = await register(client, cpu_job("web", count=2))
        job = gpu_job("web", count=2, gpus=9)
        plan = (await client.post("/v1/job/web/plan", json={"Job": job})).json()
        assert plan["JobModifyIndex"] == created["JobModifyIndex"]
        failed = plan["FailedTGAllocs"]["server"]
        assert failed["ConstraintFiltered"]["missing devices"] >= 1
        # max_parallel = 1: one destructive update per evaluation, the other waits.
        assert failed["CoalescedFailures"] == 0
        updates = plan["Annotations"]["DesiredTGUpdates"]["server"]
        assert updates["DestructiveUpdate"] == 1 and updates["Ignore"] == 1
        mismatch = await client.post("/v1/job/other/plan", json={"Job": job})
        assert (mismatch.status_code, mismatch.text) == (400, "Job ID does not match")


class TestScaleAndStop:
    async def test_scale_within_policy(self, client: httpx.AsyncClient,
                                       double: NomadDouble) -> None:
        job = cpu_job("web", count=1, max_parallel=0)
        job["TaskGroups"][0]["Scaling"] = {"Min": 0, "Max": 3, "Enabled": True}
        await register(client, job)
        scaled = await client.post("/v1/job/web/scale", json={
            "Count": 3, "Target": {"Group": "server"}, "Message": "more"})
        assert scaled.status_code == 200 and scaled.json()["EvalID"]
        assert len([a for a in await allocs(client, "web") if a["DesiredStatus"] == "run"]) == 3
        too_many = await client.post("/v1/job/web/scale", json={
            "Count": 4, "Target": {"Group": "server"}})
        assert (too_many.status_code, too_many.text) == (
            400, "group count was greater than scaling policy maximum: 4 > 3")
        no_group = await client.post("/v1/job/web/scale", json={
            "Count": 1, "Target": {"Group": "nope"}})
        assert (no_group.status_code, no_group.text) == (
            400, 'task group "nope" specified for scaling does not exist in job')
        mismatch = await client.post("/v1/job/web/scale", json={
            "Count": 1, "Target": {"Group": "server", "Job": "other"}})
        assert (mismatch.status_code, mismatch.text) == (400, "job ID in payload did not match URL")
        status = (await client.get("/v1/job/web/scale")).json()
        assert status["TaskGroups"]["server"]["Desired"] == 3
        assert status["TaskGroups"]["server"]["Events"][0]["Message"] == "more"
        down = await client.post("/v1/job/web/scale", json={"Count": 1,
                                                            "Target": {"Group": "server"}})
        assert down.status_code == 200
        running = [a for a in await allocs(client, "web") if a["DesiredStatus"] == "run"]
        assert [a["Name"] for a in running] == ["web.server[0]"]
        stopped = [a for a in await allocs(client, "web") if a["DesiredStatus"] == "stop"]
        assert {a["DesiredDescription"] for a in stopped} == {
            "alloc not needed due to job update"}
        assert {a["ClientStatus"] for a in stopped} == {"complete"}

    async def test_preserve_counts(self, client: httpx.AsyncClient) -> None:
        await register(client, cpu_job("web", count=1))
        await client.post("/v1/job/web/scale", json={"Count": 3, "Target": {"Group": "server"}})
        await register(client, cpu_job("web", count=1, cpu=800), PreserveCounts=True)
        job = (await client.get("/v1/job/web")).json()
        assert job["TaskGroups"][0]["Count"] == 3
        assert job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] == 800

    async def test_scale_blocked_during_deployment(self, client: httpx.AsyncClient,
                                                   double: NomadDouble) -> None:
        job = cpu_job("web", count=1, max_parallel=1)
        job["TaskGroups"][0]["Scaling"] = {"Min": 0, "Max": 4}
        await register(client, job)
        deployment = (await client.get("/v1/job/web/deployment")).json()
        assert deployment["Status"] == "running"
        blocked = await client.post("/v1/job/web/scale", json={"Count": 2,
                                                               "Target": {"Group": "server"}})
        assert (blocked.status_code, blocked.text) == (
            400, "job scaling blocked due to active deployment")
        [alloc] = await allocs(client, "web")
        double.set_alloc_status(alloc["ID"], "running", healthy=True)
        deployment = (await client.get(f"/v1/deployment/{deployment['ID']}")).json()
        assert deployment["Status"] == "successful"
        assert deployment["TaskGroups"]["server"]["HealthyAllocs"] == 1
        assert (await client.get("/v1/job/web")).json()["Stable"] is True
        allowed = await client.post("/v1/job/web/scale", json={"Count": 2,
                                                               "Target": {"Group": "server"}})
        assert allowed.status_code == 200

    async def test_deregister_then_purge(self, client: httpx.AsyncClient) -> None:
        await register(client, cpu_job("web", count=2))
        stopped = await client.delete("/v1/job/web")
        assert stopped.status_code == 200
        body = stopped.json()
        assert body["EvalID"] and body["JobModifyIndex"] == body["Index"]
        job = (await client.get("/v1/job/web")).json()
        assert job["Stop"] is True and job["Version"] == 1 and job["Status"] == "dead"
        states = {(a["DesiredStatus"], a["ClientStatus"]) for a in await allocs(client, "web")}
        assert states == {("stop", "complete")}
        purged = await client.delete("/v1/job/web", params={"purge": "true"})
        assert purged.status_code == 200
        assert (await client.get("/v1/job/web")).status_code == 404
        assert (await client.get("/v1/jobs")).json() == []
        unknown = await client.delete("/v1/job/never")
        assert unknown.status_code == 200 and unknown.json()["EvalID"] == ""

    async def test_alloc_stop_replaces(self, client: httpx.AsyncClient) -> None:
        await register(client, cpu_job("web"))
        [alloc] = await allocs(client, "web")
        response = await client.post(f"/v1/allocation/{alloc['ID']}/stop")
        assert response.status_code == 200 and set(response.json()) == {"EvalID", "Index"}
        found = {a["ID"]: a for a in await allocs(client, "web")}
        old = found.pop(alloc["ID"])
        assert old["DesiredStatus"] == "stop"
        assert old["DesiredDescription"] == "alloc is being migrated"
        [new] = found.values()
        assert new["Name"] == alloc["Name"] and new["DesiredStatus"] == "run"
        assert old["NextAllocation"] == new["ID"]
        missing = await client.post("/v1/allocation/00000000-0000-0000-0000-000000000000/stop")
        assert (missing.status_code, missing.text) == (404, "allocation not found")

    async def test_evaluate(self, client: httpx.AsyncClient) -> None:
        await register(client, cpu_job("web"))
        forced = await client.post("/v1/job/web/evaluate", json={
            "JobID": "web", "EvalOptions": {"ForceReschedule": True}})
        assert forced.status_code == 200 and forced.json()["EvalID"]
        mismatch = await client.post("/v1/job/web/evaluate", json={"JobID": "x"})
        assert (mismatch.status_code, mismatch.text) == (400, "JobID not same as job name")
