"""Fixtures for gateway tests: a database, a gateway process, engine doubles on demand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import fresh_database
from tests.gateway.harness import Consul, Double, Gateway, Proc, World


class Stack:
    """One database and one gateway; engine doubles are started per test as needed."""

    def __init__(self, logs: Path, db_url: str, **gateway_env: str) -> None:
        self.logs = logs
        self.world = World(db_url)
        self.procs: list[Proc] = []
        self.gateway = Gateway(logs, db_url, **gateway_env)
        self.procs.append(self.gateway)

    def double(self, name: str, model: str, **kwargs: Any) -> Double:
        double = Double(self.logs, name, model, **kwargs)
        self.procs.append(double)
        return double

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


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
