"""Streams from engines that ignore ``stream_options.include_usage``: the gateway counts the
tokens it relayed (one per text-bearing event), sends the usage chunk, and records it."""

from __future__ import annotations

import openai

from tests.support.gateway_harness import Group, Stack, wait_until


def recorded(stack: Stack, group: Group) -> tuple[int, int]:
    row = stack.world.sql(
        "SELECT coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0)"
        " FROM gateway_usage WHERE route_id = %s", (group.route_id,))[0]
    return int(row[0]), int(row[1])


def test_relayed_tokens_become_the_usage_chunk_and_the_record(stack: Stack) -> None:
    double = stack.double("mute", "mute")
    double.control(stream_usage=False, tokens=5)
    group = stack.world.add_group("mute")
    group.add_task(double)
    stack.gateway.wait_usable(group.id, 1)
    stack.gateway.wait_serving(group.key, "mute")
    wait_until(lambda: recorded(stack, group)[1] > 0, what="the warm-up recorded")
    _, warm = recorded(stack, group)
    sdk = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=group.key, max_retries=0)

    chunks = list(sdk.chat.completions.create(
        model="mute", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "".join(f"mute-{i} " for i in range(5))
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (0, 5)
    assert sum(1 for c in chunks if c.usage is not None) == 1
    wait_until(lambda: recorded(stack, group)[1] == warm + 5, what="the count recorded")

    # Not asked for: no usage chunk, yet the relayed tokens are recorded all the same.
    chunks = list(sdk.completions.create(model="mute", prompt="hi", stream=True))
    assert all(c.usage is None for c in chunks)
    wait_until(lambda: recorded(stack, group)[1] == warm + 10, what="the count recorded")


def test_an_engines_own_usage_is_relayed_once_and_wins(stack: Stack) -> None:
    double = stack.double("talky", "talky")
    double.control(tokens=3)
    group = stack.world.add_group("talky")
    group.add_task(double)
    stack.gateway.wait_usable(group.id, 1)
    stack.gateway.wait_serving(group.key, "talky")
    sdk = openai.OpenAI(base_url=stack.gateway.url + "/v1", api_key=group.key, max_retries=0)
    chunks = list(sdk.chat.completions.create(
        model="talky", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    usages = [c.usage for c in chunks if c.usage is not None]
    assert len(usages) == 1
    assert (usages[0].prompt_tokens, usages[0].completion_tokens) == (7, 3)
    wait_until(lambda: recorded(stack, group)[0] >= 7, what="the engine's prompt tokens")
