"""Is an engine busy? Read from its Prometheus ``/metrics``: gauges of requests running and
waiting, and (where the engine has them) token counters, whose change between two polls
shows requests that came and went unseen in between.

One entry per engine in ``IDLE_SIGNALS``. Names as the engines export them: vLLM
``vllm:num_requests_running`` / ``_waiting`` and ``vllm:prompt_tokens_total``; SGLang
``sglang:num_running_reqs`` / ``sglang:num_queue_reqs`` (with ``--enable-metrics``);
llama.cpp's ``llama-server`` ``llamacpp:requests_processing`` / ``_deferred`` (with
``--metrics``). llama-cpp-python's server has no ``/metrics`` at all, so no idle signal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import httpx

from agent_plugin.errors import EngineUnreachable, SleepUnsupported


@dataclass(frozen=True, slots=True)
class IdleSignal:
    gauges: tuple[str, ...]  # all must be present; busy while any is above 0
    counters: tuple[str, ...] = ()  # optional; busy when one moved since the last poll


IDLE_SIGNALS: dict[str, IdleSignal] = {
    "vllm": IdleSignal(("vllm:num_requests_running", "vllm:num_requests_waiting"),
                       ("vllm:prompt_tokens_total",)),
    "sglang": IdleSignal(("sglang:num_running_reqs", "sglang:num_queue_reqs"),
                         ("sglang:prompt_tokens_total",)),
    "llamacpp": IdleSignal(("llamacpp:requests_processing", "llamacpp:requests_deferred"),
                           ("llamacpp:prompt_tokens_total",)),
}

# name{labels} value [timestamp]; label values may hold spaces and escaped quotes
_SAMPLE = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?'
                     r"\s+(\S+)")
_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Load:
    """What the engine reported: gauge sums and counter sums, by metric name."""

    gauges: dict[str, float]
    counters: dict[str, float]

    @property
    def in_flight(self) -> float:
        return sum(self.gauges.values())

    def words(self) -> str:
        return ", ".join(f"{name.split(':', 1)[-1]} {value:g}"
                         for name, value in self.gauges.items())


def parse_samples(text: str, names: set[str]) -> dict[str, float]:
    """The sum over all label sets of each wanted metric (engines label by model name)."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None or match.group(1) not in names:
            continue
        try:
            value = float(match.group(2))
        except ValueError:
            continue
        if not math.isnan(value):
            sums[match.group(1)] = sums.get(match.group(1), 0.0) + value
    return sums


async def read_load(client: httpx.AsyncClient, address: str, signal: IdleSignal) -> Load:
    """Poll ``http://address/metrics``. Raises ``SleepUnsupported`` when the engine has no
    metrics (404, or the gauges are missing) and ``EngineUnreachable`` when it does not
    answer."""
    url = f"http://{address}/metrics"
    try:
        response = await client.get(url, timeout=_TIMEOUT_S)
    except httpx.HTTPError as exc:
        raise EngineUnreachable(f"{url} did not answer: {type(exc).__name__}") from exc
    if response.status_code == 404:
        raise SleepUnsupported(f"the engine serves no {url} (started without metrics?)")
    if response.status_code != 200:
        raise EngineUnreachable(f"{url} answered {response.status_code}")
    wanted = set(signal.gauges) | set(signal.counters)
    sums = parse_samples(response.text, wanted)
    missing = [g for g in signal.gauges if g not in sums]
    if missing:
        raise SleepUnsupported(f"{url} lacks {', '.join(missing)}")
    return Load(gauges={g: sums[g] for g in signal.gauges},
                counters={c: sums[c] for c in signal.counters if c in sums})
