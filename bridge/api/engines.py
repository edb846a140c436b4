"""GET /api/v1/engines: the engine registry and each GPU vendor's default chain.

The web UI's engine presets come from here rather than from a copy in the browser, so a
new engine or image shows up in the form the day it lands in the registry.
"""

from __future__ import annotations

from pydantic import BaseModel
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from bridge.api.http import operation
from bridge.domain.engines import DEFAULT_CHAIN, ENGINES, chain_for
from bridge.domain.models import GpuVendor

bp = Blueprint("engines", url_prefix="/api/v1")


class EngineOut(BaseModel):
    engine: str
    default_image: str
    vendors: list[str]
    cpu_capable: bool
    health_path: str
    sleep_api: str | None


class EnginesOut(BaseModel):
    engines: list[EngineOut]
    chains: dict[str, list[str]]


def engines_document() -> EnginesOut:
    engines = [EngineOut(engine=s.engine.value, default_image=s.default_image,
                         vendors=sorted(v.value for v in s.vendors), cpu_capable=s.cpu_capable,
                         health_path=s.health_path, sleep_api=s.sleep_api)
               for s in ENGINES.values()]
    # Every vendor, including those that fall back to the generic chain.
    chains = {v.value: [e.value for e in chain_for(v)] for v in GpuVendor}
    assert set(DEFAULT_CHAIN) <= set(GpuVendor)
    return EnginesOut(engines=engines, chains=chains)


@operation(bp, "GET", "/engines", summary="Engines (default image, vendors, CPU capable) and "
           "each GPU vendor's default engine chain", response=EnginesOut)
async def list_engines(_: Request) -> HTTPResponse:
    return json(engines_document().model_dump(mode="json"))
