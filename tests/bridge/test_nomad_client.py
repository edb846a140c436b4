"""The Nomad adapter against the Nomad API double (and a fault-injecting proxy before it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, web

from bridge.errors import NomadConflict, NomadForbidden, NomadRejected, NomadUnavailable
from bridge.nomad.client import NomadClient
from bridge.settings import BridgeSettings
from tests.support.jobspec_render import rendered
from tests.support.nomad_double import ManualRunner, NomadDouble, mixed_fleet
from tests.support.pg import free_port


def client_for(address: str, **over: Any) -> NomadClient:
    return NomadClient(BridgeSettings(nomad_addr=address, secret_key="x" * 43 + "=", **over))


@pytest.fixture
async def double() -> AsyncIterator[NomadDouble]:
    async with NomadDouble(nodes=mixed_fleet(), runner=ManualRunner(),
                           heartbeat_seconds=0.2) as running:
        yield running


class FaultProxy:
    """Forwards to the double, answering the first requests that match with a fault."""

    def __init__(self, target: str) -> None:
        self.target, self.port = target, free_port()
        self.faults: list[tuple[str, int, str]] = []  # (path, status, text)
        self.seen: list[str] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(f"{request.method} {request.path}")
        for i, (prefix, status, text) in enumerate(self.faults):
            if request.path == prefix:
                del self.faults[i]
                return web.Response(status=status, text=text, content_type="text/plain")
        async with ClientSession() as session, session.request(
                request.method, self.target + request.path_qs, data=await request.read(),
                headers={k: v for k, v in request.headers.items()
                         if k.lower() not in ("host", "content-length")}) as upstream:
            return web.Response(status=upstream.status, body=await upstream.read(),
                                content_type=upstream.content_type)


@pytest.fixture
async def proxy(double: NomadDouble) -> AsyncIterator[FaultProxy]:
    fault = FaultProxy(double.address)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fault.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", fault.port).start()
    yield fault
    await runner.cleanup()


async def parsed_job(nomad: NomadClient, name: str = "qwen") -> dict[str, Any]:
    return await nomad.parse(await rendered(name=name))


async def test_parse_register_and_check_and_set(double) -> None:
    nomad = client_for(double.address)
    job = await parsed_job(nomad)
    assert job["ID"] == "hf-qwen" and job["TaskGroups"][0]["Name"] == "engine"
    first = await nomad.register(job, modify_index=None)
    index = first["JobModifyIndex"]
    with pytest.raises(NomadConflict, match="already exists"):
        await nomad.register(job, modify_index=None)  # "only if new"
    job["Meta"]["hf_version"] = "v2"
    second = await nomad.register(job, modify_index=index)
    assert second["JobModifyIndex"] > index
    with pytest.raises(NomadConflict, match="conflicting job modify index"):
        await nomad.register(job, modify_index=index)  # stale
    assert (await nomad.job("hf-qwen"))["Version"] == 1
    assert await nomad.deregister("hf-qwen") is not None
    assert await nomad.job("hf-qwen") is None
    await nomad.deregister("hf-qwen")  # already gone: Nomad answers 200, we do not raise
    await nomad.close()


async def test_scale_during_a_deployment_is_a_conflict(double) -> None:
    nomad = client_for(double.address)
    await nomad.register(await parsed_job(nomad), modify_index=None)
    with pytest.raises(NomadConflict, match="active deployment") as info:
        await nomad.scale("hf-qwen", "engine", 2, "more replicas")
    assert info.value.status == 409
    await nomad.close()


async def test_plan_predicts_without_placing(double) -> None:
    nomad = client_for(double.address)
    plan = await nomad.plan(await nomad.parse(await rendered(estimated_gpu_memory_mb=900_000)))
    assert "missing devices" in str(plan["FailedTGAllocs"]["engine"]["ConstraintFiltered"])
    assert await nomad.job("hf-qwen") is None
    await nomad.close()


async def test_acl_token() -> None:
    async with NomadDouble(nodes=mixed_fleet(), acl_token="s3cret-token") as double:
        anonymous = client_for(double.address)
        with pytest.raises(NomadForbidden):
            await anonymous.nodes()
        authorised = client_for(double.address, nomad_token="s3cret-token")
        assert len(await authorised.nodes()) == len(mixed_fleet())
        await anonymous.close()
        await authorised.close()


async def test_transient_500s_are_retried(double, proxy) -> None:
    nomad = client_for(f"http://127.0.0.1:{proxy.port}")
    proxy.faults = [("/v1/jobs", 500, "No cluster leader"),
                    ("/v1/jobs", 503, "service unavailable")]
    result = await nomad.register(await parsed_job(nomad), modify_index=None)
    assert result["JobModifyIndex"] > 0
    assert proxy.seen.count("POST /v1/jobs") == 3
    await nomad.close()


async def test_refusals_are_not_retried(double, proxy) -> None:
    nomad = client_for(f"http://127.0.0.1:{proxy.port}")
    job = await parsed_job(nomad)
    proxy.faults = [("/v1/jobs", 500, "1 error occurred:\n\t* Task group engine validation "
                                      "failed: bad thing")]
    with pytest.raises(NomadRejected, match="validation failed") as info:
        await nomad.register(job, modify_index=None)
    assert info.value.details["nomad_status"] == 500
    assert proxy.seen.count("POST /v1/jobs") == 1
    await nomad.close()


async def test_nomad_gone_is_unavailable_after_retries() -> None:
    nomad = client_for(f"http://127.0.0.1:{free_port()}", )
    with pytest.raises(NomadUnavailable, match="cannot reach Nomad"):
        await nomad.nodes()
    await nomad.close()


async def test_event_stream_skips_heartbeats(double) -> None:
    nomad = client_for(double.address)
    stream = nomad.events(index=0, topics=["Job"])
    await nomad.register(await parsed_job(nomad), modify_index=None)
    frame = await asyncio.wait_for(anext(stream), timeout=5)
    assert frame["Events"][0]["Topic"] == "Job"
    assert frame["Events"][0]["Key"] == "hf-qwen"
    await stream.aclose()
    await nomad.close()
