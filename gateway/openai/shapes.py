"""The shape of OpenAI request bodies, checked at the gateway so that a client's mistake is
the client's 400 (``invalid_request_error``, as the SDK expects) and never an engine's 500
counted against a backend.

Only the fields OpenAI defines are checked, with OpenAI's types and ranges; unknown fields
pass (engines have their own extensions), and the body is forwarded as received. Strict
types: ``"1"`` is not an integer, ``1`` is a valid float, as in OpenAI's API.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one below Python 3.12

from gateway.errors import InvalidRequest

Penalty = Annotated[float, Field(ge=-2, le=2)]
TokenIds = list[int]
Texts = str | list[str] | TokenIds | list[TokenIds]


class _Shape(TypedDict):
    # TypedDicts, not models: validated without building an object (3 us a chat body, not 15).
    __pydantic_config__ = ConfigDict(extra="ignore", strict=True)  # type: ignore[misc]


class StreamOptions(_Shape):
    include_usage: NotRequired[bool | None]


class Message(_Shape):
    role: Literal["system", "user", "assistant", "tool", "developer", "function"]
    content: NotRequired[str | list[dict[str, Any]] | None]
    name: NotRequired[str | None]


class _Sampling(_Shape):
    model: str
    stream: NotRequired[bool | None]
    stream_options: NotRequired[StreamOptions | None]
    max_tokens: NotRequired[Annotated[int, Field(ge=0)] | None]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=2)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    n: NotRequired[Annotated[int, Field(ge=1, le=128)] | None]
    presence_penalty: NotRequired[Penalty | None]
    frequency_penalty: NotRequired[Penalty | None]
    stop: NotRequired[str | list[str] | None]
    seed: NotRequired[int | None]
    user: NotRequired[str | None]
    logit_bias: NotRequired[dict[str, float] | None]


class ChatRequest(_Sampling):
    messages: list[Message]
    max_completion_tokens: NotRequired[Annotated[int, Field(ge=0)] | None]
    logprobs: NotRequired[bool | None]
    top_logprobs: NotRequired[Annotated[int, Field(ge=0, le=20)] | None]
    tools: NotRequired[list[dict[str, Any]] | None]
    tool_choice: NotRequired[str | dict[str, Any] | None]
    response_format: NotRequired[dict[str, Any] | None]


class CompletionRequest(_Sampling):
    prompt: Texts
    echo: NotRequired[bool | None]
    suffix: NotRequired[str | None]
    best_of: NotRequired[Annotated[int, Field(ge=1)] | None]
    logprobs: NotRequired[Annotated[int, Field(ge=0, le=5)] | None]


class EmbeddingRequest(_Shape):
    model: str
    input: Texts
    encoding_format: NotRequired[Literal["float", "base64"] | None]
    dimensions: NotRequired[Annotated[int, Field(ge=1)] | None]
    user: NotRequired[str | None]


SHAPES: dict[str, TypeAdapter[Any]] = {
    "/chat/completions": TypeAdapter(ChatRequest),
    "/completions": TypeAdapter(CompletionRequest),
    "/embeddings": TypeAdapter(EmbeddingRequest),
}

# Pydantic names the member of a union it tried in an error's location; OpenAI's ``param``
# is the field path alone.
_UNION_TAGS = {"str", "int", "float", "bool", "dict", "list", "none"}


def check_shape(suffix: str, body: dict[str, Any]) -> None:
    adapter = SHAPES.get(suffix)
    if adapter is None:
        return
    try:
        adapter.validate_python(body)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _invalid(exc: ValidationError) -> InvalidRequest:
    error = exc.errors(include_url=False)[0]
    param = _param(error["loc"])
    if error["type"] == "missing":
        return InvalidRequest(f"Missing required parameter: '{param}'.", param=param,
                              code="missing_required_parameter")
    kind = "invalid_type" if error["type"].endswith("_type") else "invalid_value"
    what = "type" if kind == "invalid_type" else "value"
    return InvalidRequest(f"Invalid {what} for '{param}': {error['msg']}.", param=param,
                          code=kind)


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.lower() in _UNION_TAGS or "[" in part or "-" in part:
            continue
        else:
            out += f".{part}" if out else part
    return out or "body"
