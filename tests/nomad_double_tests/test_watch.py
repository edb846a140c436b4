"""Watching the double: blocking queries, the NDJSON event stream, and ACLs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.support.nomad_double import ManualRunner, NomadDouble, mixed_fleet

from .helpers import allocs, cpu_job, register

Json = dict[str, Any]


class Lines:
    """One NDJSON event stream, read line by line (heartbeats `{}` included)."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, within: float = 5.0) -> Json:
        while True:
            line = await asyncio.wait_for(anext(self._lines), within)
            if line:
                parsed: Json = json.loads(line)
                return parsed

    async def batch(self, within: float = 5.0) -> Json:
        while True:
            line = await self.next(within)
            if line:
                return line


class TestBlockingQueries:
    async def test_returns_when_the_index_moves(self, client: httpx.AsyncClient,
                                                double: NomadDouble) -> None:
        await register(client, cpu_job("web"))
        first = await client.get("/v1/job/web/allocations")
        index = int(first.headers["X-Nomad-Index"])
        [alloc] = first.json()

        async def later() -> None:
            await asyncio.sleep(0.2)
            double.set_alloc_status(alloc["ID"], "running")

        started = time.monotonic()
        changer = asyncio.create_task(later())
        response = await client.get("/v1/job/web/allocations",
                                    params={"index": index, "wait": "5s"})
        await changer
        assert 0.15 < time.monotonic() - started < 3
        assert int(response.headers["X-Nomad-Index"]) > index
        assert response.json()[0]["ClientStatus"] == "running"

    async def test_wait_expires_with_the_same_index(self, client: httpx.AsyncClient) -> None:
        index = int((await client.get("/v1/nodes")).headers["X-Nomad-Index"])
        started = time.monotonic()
        response = await client.get("/v1/nodes", params={"index": index, "wait": "300ms"})
        assert 0.25 < time.monotonic() - started < 2
        assert int(response.headers["X-Nomad-Index"]) == index

    async def test_unrelated_tables_do_not_wake_node_queries(
            self, client: httpx.AsyncClient) -> None:
        index = int((await client.get("/v1/nodes")).headers["X-Nomad-Index"])
        query = asyncio.create_task(client.get("/v1/nodes", params={"index": index,
                                                                     "wait": "400ms"}))
        await asyncio.sleep(0.05)
        await register(client, cpu_job("web"))
        response = await query
        assert int(response.headers["X-Nomad-Index"]) == index

    @pytest.mark.parametrize(("params", "text"), [({"index": "x"}, "Invalid index"),
                                                  ({"index": "1", "wait": "soon"},
                                                   "Invalid wait time")])
    async def test_bad_parameters(self, client: httpx.AsyncClient, params: dict[str, str],
                                  text: str) -> None:
        response = await client.get("/v1/jobs", params=params)
        assert (response.status_code, response.text) == (400, text)


class TestEventStream:
    async def test_job_topic_and_heartbeats(self, client: httpx.AsyncClient) -> None:
        async with client.stream("GET", "/v1/event/stream",
                                 params={"topic": "Job:web"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["Content-Type"] == "application/json"
            lines = Lines(stream)
            await register(client, cpu_job("other"))
            await register(client, cpu_job("web"))
            batch = await lines.batch()
            [event] = batch["Events"][:1]
            assert (event["Topic"], event["Type"], event["Key"]) == (
                "Job", "JobRegistered", "web")
            assert event["Index"] == batch["Index"] and event["Namespace"] == "default"
            assert event["Payload"]["Job"]["ID"] == "web"
            assert {e["Key"] for e in batch["Events"]} == {"web"}
            while await lines.next(within=3) != {}:
                pass

    async def test_allocation_filter_keys_and_shape(self, client: httpx.AsyncClient) -> None:
        await register(client, cpu_job("other"))
        async with client.stream("GET", "/v1/event/stream", params={
                "topic": ["Allocation:web", "Evaluation:web"]}) as stream:
            lines = Lines(stream)
            await register(client, cpu_job("web"))
            seen: list[Json] = []
            while not any(e["Topic"] == "Allocation" for e in seen):
                seen.extend((await lines.batch())["Events"])
            alloc_event = next(e for e in seen if e["Topic"] == "Allocation")
            assert alloc_event["Type"] == "PlanResult"
            assert alloc_event["FilterKeys"][0] == "web"
            payload = alloc_event["Payload"]["Allocation"]
            assert payload["Job"] is None and payload["AllocatedResources"] is not None
            assert {e["Payload"].get("Allocation", e["Payload"].get("Evaluation"))["JobID"]
                    for e in seen} == {"web"}

    async def test_index_is_inclusive_and_gaps_are_silent(self, client: httpx.AsyncClient,
                                                          double: NomadDouble) -> None:
        first = await register(client, cpu_job("a"))
        await register(client, cpu_job("b"))
        async with client.stream("GET", "/v1/event/stream", params={
                "index": first["Index"], "topic": "Job"}) as stream:
            batch = await Lines(stream).batch()
            assert batch["Index"] == first["Index"]
        later = await register(client, cpu_job("c"))
        double.drop_events_until(later["Index"])
        async with client.stream("GET", "/v1/event/stream", params={
                "index": 1, "topic": "Job"}) as stream:
            batch = await Lines(stream).batch()
            assert batch["Index"] >= later["Index"]

    async def test_close_streams_ends_them(self, client: httpx.AsyncClient,
                                           double: NomadDouble) -> None:
        async with client.stream("GET", "/v1/event/stream") as stream:
            lines = Lines(stream)
            await lines.next()
            double.close_streams()
            with pytest.raises(StopAsyncIteration):
                while True:
                    await lines.next(within=3)

    async def test_bad_topic(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/event/stream", params={"topic": "Job:a:b"})
        assert response.status_code == 400
        assert response.text.startswith("Invalid topic query")


@pytest.fixture
async def secured() -> AsyncIterator[NomadDouble]:
    async with NomadDouble(nodes=mixed_fleet(), runner=ManualRunner(),
                           acl_token="s3cret") as running:
        yield running


class TestAcl:
    async def test_tokens(self, secured: NomadDouble) -> None:
        async with httpx.AsyncClient(base_url=secured.address) as client:
            anonymous = await client.get("/v1/jobs")
            assert (anonymous.status_code, anonymous.text) == (403, "Permission denied")
            wrong = await client.get("/v1/jobs", headers={"X-Nomad-Token": "nope"})
            assert (wrong.status_code, wrong.text) == (403, "ACL token not found")
            ok = await client.get("/v1/jobs", headers={"X-Nomad-Token": "s3cret"})
            assert ok.status_code == 200
            bearer = await client.get("/v1/nodes", headers={"Authorization": "Bearer s3cret"})
            assert bearer.status_code == 200
            me = await client.get("/v1/acl/token/self", headers={"X-Nomad-Token": "s3cret"})
            assert me.json()["Type"] == "management" and me.json()["SecretID"] == "s3cret"
            stream = await client.get("/v1/event/stream")
            assert stream.status_code == 403

    async def test_acl_disabled(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/acl/token/self")
        assert (response.status_code, response.text) == (400, "ACL support disabled")
        assert (await client.get("/v1/jobs", headers={"X-Nomad-Token": "any"})).status_code \
            == 200


async def test_namespaces_and_regions(client: httpx.AsyncClient) -> None:
    await client.put("/v1/jobs", params={"namespace": "team-a"}, json={"Job": cpu_job("web")})
    assert (await client.get("/v1/jobs")).json() == []
    listed = (await client.get("/v1/jobs", params={"namespace": "team-a"})).json()
    assert [j["Namespace"] for j in listed] == ["team-a"]
    assert len((await client.get("/v1/jobs", params={"namespace": "*"})).json()) == 1
    assert len(await allocs(client, "web")) == 0
    assert (await client.get("/v1/jobs", params={"region": "global"})).status_code == 200
    other = await client.get("/v1/jobs", params={"region": "eu"})
    assert (other.status_code, other.text) == (500, "No path to region")
