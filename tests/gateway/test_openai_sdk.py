"""The official OpenAI SDK, unchanged, against the gateway: chat, stream, models, errors."""

from __future__ import annotations

import itertools
import time

import httpx
import openai
import pytest

from tests.support.gateway_harness import Group, Stack


def client(stack: Stack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=key, max_retries=0,
                         timeout=30)


@pytest.fixture(scope="module")
def served(stack: Stack) -> Group:
    double = stack.double("sdk", "served-sdk")
    # The public model name differs from the engine's served name: the gateway rewrites it.
    group = stack.world.add_group("sdk-group", model="served-sdk", route=False)
    group.route_id = stack.world.add_route("sdk-model", group_id=group.id, version="v1")
    group.add_task(double)
    stack.gateway.wait_serving(group.key, "sdk-model")
    return group


class TestChat:
    def test_completion_is_relayed_with_the_model_rewritten(self, stack: Stack,
                                                            served: Group) -> None:
        raw = client(stack, served.key).chat.completions.with_raw_response.create(
            model="sdk-model", messages=[{"role": "user", "content": "hello"}])
        completion = raw.parse()
        assert completion.choices[0].message.content == "sdk-0 sdk-1 sdk-2 sdk-3 "
        assert completion.model == "served-sdk"
        assert completion.usage is not None and completion.usage.completion_tokens == 4
        assert raw.headers["x-heteroflow-route-version"] == "v1"
        assert raw.headers["x-heteroflow-backend"].startswith("task-")
        assert 0 <= float(raw.headers["x-heteroflow-overhead-ms"]) < 1000
        assert raw.headers["x-request-id"]

    def test_stream_with_usage(self, stack: Stack, served: Group) -> None:
        stream = client(stack, served.key).chat.completions.create(
            model="sdk-model", messages=[{"role": "user", "content": "hello"}], stream=True,
            stream_options={"include_usage": True})
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "sdk-0 sdk-1 sdk-2 sdk-3 "
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.prompt_tokens == 7
        assert chunks[-1].usage.completion_tokens == 4

    def test_chunks_are_relayed_as_they_arrive(self, stack: Stack, served: Group) -> None:
        paced = stack.double("paced", "paced")
        paced.control(tokens=8, token_rate=10)  # one token every 100 ms
        group = stack.world.add_group("paced")
        group.add_task(paced)
        stack.gateway.wait_serving(group.key, "paced")
        arrivals = []
        started = time.monotonic()
        with httpx.stream("POST", stack.gateway.url + "/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {group.key}"},
                          json={"model": "paced", "messages": [], "stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    arrivals.append(time.monotonic() - started)
        assert len(arrivals) == 9  # 8 tokens and the finish chunk
        gaps = [b - a for a, b in itertools.pairwise(arrivals[:7])]
        assert all(0.05 < g < 0.2 for g in gaps), gaps  # not held back and sent together

    def test_legacy_completions_and_embeddings(self, stack: Stack, served: Group) -> None:
        sdk = client(stack, served.key)
        done = sdk.completions.create(model="sdk-model", prompt="hi")
        assert done.choices[0].text.startswith("sdk-0")
        streamed = "".join(c.choices[0].text for c in
                           sdk.completions.create(model="sdk-model", prompt="hi", stream=True)
                           if c.choices)
        assert streamed == "sdk-0 sdk-1 sdk-2 sdk-3 "
        vectors = sdk.embeddings.create(model="sdk-model", input=["a", "b"])
        assert [d.index for d in vectors.data] == [0, 1]


class TestModels:
    def test_lists_only_the_models_the_key_may_use(self, stack: Stack, served: Group) -> None:
        other = stack.world.add_group("sdk-other", model="other-model")
        ids = {m.id for m in client(stack, served.key).models.list()}
        assert ids == {"sdk-model"}
        assert client(stack, served.key).models.retrieve("sdk-model").id == "sdk-model"
        with pytest.raises(openai.NotFoundError):
            client(stack, served.key).models.retrieve("other-model")
        # the other group's key sees its own model once the gateway has refreshed
        assert other.model not in ids


class TestErrors:
    def test_bad_key_is_401(self, stack: Stack, served: Group) -> None:
        with pytest.raises(openai.AuthenticationError) as info:
            client(stack, "sk-not-a-key").chat.completions.create(
                model="sdk-model", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 401
        assert info.value.code == "invalid_api_key"

    def test_missing_key_is_401(self, stack: Stack) -> None:
        r = httpx.post(stack.gateway.url + "/v1/chat/completions", json={"model": "x"})
        assert r.status_code == 401
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}

    def test_model_of_another_endpoint_is_403(self, stack: Stack, served: Group) -> None:
        stranger = stack.world.add_group("sdk-stranger", model="stranger-model")
        stack.gateway.wait_serving(served.key, "sdk-model")

        def forbidden() -> bool:
            try:
                client(stack, stranger.key).chat.completions.create(
                    model="sdk-model", messages=[{"role": "user", "content": "x"}])
            except openai.PermissionDeniedError as exc:
                return exc.code == "model_not_allowed"
            except openai.AuthenticationError:
                return False  # the new key is not visible yet
            return False

        from tests.support.gateway_harness import wait_until
        wait_until(forbidden, what="403 for another endpoint's model")

    def test_unknown_model_is_404(self, stack: Stack, served: Group) -> None:
        with pytest.raises(openai.NotFoundError) as info:
            client(stack, served.key).chat.completions.create(
                model="no-such-model", messages=[{"role": "user", "content": "x"}])
        assert info.value.code == "model_not_found"

    @pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"messages": []}',
                                      b'{"model": 5}', b'{"model": "sdk-model", "stream": 1}',
                                      b"", b"\xff\xfe"])
    def test_malformed_body_is_400(self, stack: Stack, served: Group, body: bytes) -> None:
        r = httpx.post(stack.gateway.url + "/v1/chat/completions", content=body,
                       headers={"Authorization": f"Bearer {served.key}",
                                "Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "invalid_request_error"

    def test_sdk_bad_request(self, stack: Stack, served: Group) -> None:
        with pytest.raises(openai.BadRequestError) as info:
            client(stack, served.key).chat.completions.create(
                model="sdk-model", messages=[], extra_body={"stream": "yes"})
        assert info.value.param == "stream"

    def test_unknown_path_is_openai_shaped_404(self, stack: Stack, served: Group) -> None:
        r = httpx.get(stack.gateway.url + "/v1/nothing/here",
                      headers={"Authorization": f"Bearer {served.key}"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "unknown_url"
