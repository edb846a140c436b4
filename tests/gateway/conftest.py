"""Fixtures for gateway tests: a database, a gateway process, engine doubles on demand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.gateway_harness import Consul, Stack
from tests.support.pg import fresh_database


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw"), fresh_database(pg))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def consul(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consul]:
    agent = Consul(tmp_path_factory.mktemp("consul"))
    try:
        yield agent
    finally:
        agent.stop()
