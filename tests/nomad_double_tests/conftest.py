"""Fixtures: a fresh double on the mixed fleet per test, and an HTTP client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.nomad_double import ManualRunner, NomadDouble, mixed_fleet


@pytest.fixture
async def double() -> AsyncIterator[NomadDouble]:
    async with NomadDouble(nodes=mixed_fleet(), runner=ManualRunner(),
                           heartbeat_seconds=0.2) as running:
        yield running


@pytest.fixture
async def client(double: NomadDouble) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=double.address, timeout=30) as http:
        yield http
