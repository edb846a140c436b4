"""Schemathesis over the REST API's own OpenAPI document: every operation, with the admin
token, NUL characters and nulls among the inputs, a fixed seed. No answer may be a server
error, and every answer must match what the document promises (status, content type,
headers, body)."""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.storage.embedded import EmbeddedPostgres
from tests.support.bridge_server import BridgeUnderTest, running_bridge

pytestmark = pytest.mark.slow
SEED = 20261204
EXAMPLES_PER_OPERATION = 150  # x 33 operations, over the coverage and fuzzing phases
MIN_CASES = 5000
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")


@pytest.fixture
async def fuzzed_bridge(pg: EmbeddedPostgres) -> AsyncIterator[BridgeUnderTest]:
    """A bridge of its own on a fresh database: the fuzzer creates, changes and revokes."""
    async with running_bridge(pg, "bridge_fuzzed") as served:
        yield served


async def test_schemathesis_finds_no_server_error_nor_violation(
        fuzzed_bridge: BridgeUnderTest, tmp_path: Path) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    # async: the bridge under test answers from this very event loop
    proc = await asyncio.create_subprocess_exec(
        cli, "run", f"{fuzzed_bridge.base_url}/api/v1/openapi.json",
        "-H", f"Authorization: Bearer {fuzzed_bridge.admin_token}",
        "--seed", str(SEED), "-n", str(EXAMPLES_PER_OPERATION), "--workers", "2",
        "--phases", "examples,coverage,fuzzing", "--generation-allow-x00", "true",
        "--checks", CHECKS, "--no-shrink", "--no-color", "--continue-on-failure",
        "--generation-database", "none", "--request-timeout", "30",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=600)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode(errors="replace")
    print(text[-1500:])  # the figures, for `pytest -s`
    generated = re.search(r"(\d+) generated", text)
    assert generated, text[-3000:]
    assert int(generated.group(1)) >= MIN_CASES, text[-3000:]
    assert proc.returncode == 0, text[-8000:]
    assert "FAILURES" not in text, text[-8000:]
