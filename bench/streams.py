"""Many concurrent streams: aggregate tokens/s and time to first token, for bench.run.

The metric that matters for an LLM gateway is what a streaming client gets while many
streams run at once: tokens/s in all, and how long the first token takes. The upstream
(bench/fake_upstream.py, ``"user":"paced"``) emits one token every ``--token-ms``, like an
engine decoding; this load generator (aiohttp, one process, loopback) keeps ``--streams``
streams open for ``--seconds`` (each starts the next as it ends), or with ``--once`` opens
them all at once exactly one time, and prints one JSON line:

    tokens, seconds, tokens_per_s, ttft_p50_ms, ttft_p99_ms, streams, failed

    python -m bench.streams --url http://127.0.0.1:PORT --key sk-... [--streams 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import uvloop

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Hello"}],
        "stream": True, "user": "paced"}


@dataclass
class Tally:
    tokens: int = 0
    streams: int = 0
    failed: int = 0
    ttft: list[float] = field(default_factory=list)
    until: float = float("inf")  # tokens after this (the streams' tail) are not counted
    errors: dict[str, int] = field(default_factory=dict)


async def one_stream(session: aiohttp.ClientSession, url: str, tally: Tally) -> None:
    started = time.perf_counter()
    first = True
    try:
        async with session.post(url, json=BODY) as resp:
            if resp.status != 200:
                raise RuntimeError(f"status {resp.status}")
            # Counting event prefixes in whatever arrived keeps the client cheap: a line
            # parser per token made the load generator the limit, not the proxy.
            async for data in resp.content.iter_any():
                if first and b"data: {" in data:
                    tally.ttft.append(time.perf_counter() - started)
                    first = False
                if b'"error"' in data:
                    raise RuntimeError("error event")
                if time.perf_counter() <= tally.until:
                    tally.tokens += data.count(b"data: {")
        tally.streams += 1
    except (aiohttp.ClientError, RuntimeError, TimeoutError) as exc:
        tally.failed += 1
        kind = type(exc).__name__ + (f": {exc}" if isinstance(exc, RuntimeError) else "")
        tally.errors[kind] = tally.errors.get(kind, 0) + 1


async def drive(base: str, key: str, streams: int, seconds: float, once: bool) -> dict[str, object]:
    url = base + "/v1/chat/completions"
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers={"Authorization": f"Bearer {key}"}) as session:
        started = time.perf_counter()
        deadline = started + seconds
        if not once:
            tally.until = deadline

        async def worker() -> None:
            while True:
                await one_stream(session, url, tally)
                if once or time.perf_counter() >= deadline:
                    return

        await asyncio.gather(*(worker() for _ in range(streams)))
        elapsed = seconds if not once else time.perf_counter() - started
    ttft = sorted(tally.ttft) or [float("nan")]
    return {"tokens": tally.tokens, "seconds": round(elapsed, 3),
            "tokens_per_s": round(tally.tokens / elapsed, 1),
            "ttft_p50_ms": round(ttft[len(ttft) // 2] * 1000, 2),
            "ttft_p99_ms": round(ttft[min(len(ttft) - 1, int(len(ttft) * 0.99))] * 1000, 2),
            "streams": tally.streams, "failed": tally.failed, "errors": tally.errors}


# -- driving it from bench.run ---------------------------------------------------------------

def measure(pin: list[str], base: str, key: str, *, streams: int, seconds: float,
            once: bool = False) -> dict[str, object]:
    """Run the load generator in its own (pinned) process; returns its figures."""
    command = [*pin, sys.executable, "-m", "bench.streams", "--url", base, "--key", key,
               "--streams", str(streams), "--seconds", str(seconds)]
    out = subprocess.run([*command, *(["--once"] if once else [])], capture_output=True,
                         text=True, check=True, timeout=seconds + 180,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def report(pin: list[str], targets: dict[str, str], key: str, seconds: float,
           rss: Callable[[], float], token_ms: float) -> None:
    print(f"\n256 concurrent streams, one token every {token_ms:g} ms per stream "
          f"(ideal {256 * 1000 / token_ms:,.0f} tokens/s), {seconds:g} s each:")
    print(f"{'target':<10} {'tokens/s':>10} {'vs upstream':>12} {'TTFT p50 ms':>12} "
          f"{'TTFT p99 ms':>12} {'streams':>8} {'failed':>7}")
    table = {}
    for name, base in targets.items():
        measure(pin, base, key, streams=256, seconds=2)  # warm up
        table[name] = r = measure(pin, base, key, streams=256, seconds=seconds)
        share = float(r["tokens_per_s"]) / float(table["upstream"]["tokens_per_s"])  # type: ignore[arg-type]
        print(f"{name:<10} {r['tokens_per_s']:>10,.0f} {share:>12.1%} {r['ttft_p50_ms']:>12.2f} "
              f"{r['ttft_p99_ms']:>12.2f} {r['streams']:>8} {r['failed']:>7}")
    up = table["upstream"]
    for name in ("nginx", "gateway"):
        added = float(table[name]["ttft_p99_ms"]) - float(up["ttft_p99_ms"])  # type: ignore[arg-type]
        print(f"  {name} adds {added:.2f} ms to TTFT p99")

    print("\n1,000 concurrent streams through the gateway, all opened at once:")
    before, peak = rss(), [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        r = measure(pin, targets["gateway"], key, streams=1000, seconds=0, once=True)
    finally:
        done.set()
        sampler.join()
    print(f"  {r['streams']} streams done, {r['failed']} failed {r['errors'] or ''}; "
          f"{r['tokens_per_s']:,.0f} tokens/s; TTFT p50 {r['ttft_p50_ms']} ms, "
          f"p99 {r['ttft_p99_ms']} ms")
    print(f"  gateway RSS: {before:.1f} MB before, {peak[0]:.1f} MB peak, {rss():.1f} MB after")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--streams", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--once", action="store_true")
    args = parser.parse_args()
    result = uvloop.run(drive(args.url, args.key, args.streams, args.seconds, args.once))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
