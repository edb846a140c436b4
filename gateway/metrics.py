"""Prometheus metrics in the text exposition format, without a client library.

The hot path only increments numbers in dicts (no locks: one event loop per worker owns
them). Label values are bounded: models are the snapshot's model names or ``_other``,
backends are pool members, statuses are HTTP codes; each family also caps its number of
series. Gauges that describe state (pool sizes, in-flight per backend, held requests) are
computed when scraped, from the objects that own that state.

With several workers, each worker exports its numbers to a file every second and a scrape
(answered by any one worker) merges them: counters and histograms add up, gauges add up or
take the maximum, as each says.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

MAX_SERIES = 5000
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 120.0, 300.0)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 1.0)

Labels = tuple[str, ...]


class Counter:
    def __init__(self, name: str, help_text: str, label_names: Labels) -> None:
        self.name = name
        self.help = help_text
        self.label_names = label_names
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        values = self.values
        if labels in values:
            values[labels] += amount
        elif len(values) < MAX_SERIES:
            values[labels] = amount

    def export(self) -> list[Any]:
        return [[list(labels), value] for labels, value in self.values.items()]

    def render(self, rows: list[Any]) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in rows:
            yield f"{self.name}{_fmt(self.label_names, tuple(labels))} {_num(value)}"


class Histogram:
    def __init__(self, name: str, help_text: str, label_names: Labels,
                 buckets: tuple[float, ...]) -> None:
        self.name = name
        self.help = help_text
        self.label_names = label_names
        self.buckets = buckets
        # labels -> per-bucket counts (non-cumulative, +Inf last), then sum
        self.series: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            if len(self.series) >= MAX_SERIES:
                return
            series = self.series[labels] = ([0] * (len(self.buckets) + 1), [0.0])
        series[0][bisect_left(self.buckets, value)] += 1
        series[1][0] += value

    def export(self) -> list[Any]:
        return [[list(labels), counts, total[0]] for labels, (counts, total)
                in self.series.items()]

    def render(self, rows: list[Any]) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        names = (*self.label_names, "le")
        for raw_labels, counts, total in rows:
            labels = tuple(raw_labels)
            running = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else _num(bound)
                yield f"{self.name}_bucket{_fmt(names, (*labels, le))} {running}"
            yield f"{self.name}_sum{_fmt(self.label_names, labels)} {_num(total)}"
            yield f"{self.name}_count{_fmt(self.label_names, labels)} {running}"


class Gauge:
    """A gauge whose series are produced by a callback at scrape time. ``merge`` says how
    workers' values combine: ``sum`` (in-flight counts) or ``max``/``min`` (states every
    worker sees alike, such as pool sizes or whether Consul answers)."""

    def __init__(self, name: str, help_text: str, label_names: Labels,
                 collect: Callable[[], Iterable[tuple[Labels, float]]],
                 merge: str = "sum") -> None:
        self.name = name
        self.help = help_text
        self.label_names = label_names
        self.collect = collect
        self.merge = merge

    def export(self) -> list[Any]:
        return [[list(labels), value] for labels, value in self.collect()]

    def render(self, rows: list[Any]) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for labels, value in rows:
            yield f"{self.name}{_fmt(self.label_names, tuple(labels))} {_num(value)}"


class GatewayMetrics:
    def __init__(self) -> None:
        p = "heteroflow_gateway_"
        self.requests = Counter(p + "requests_total", "Requests answered, by model and status.",
                                ("model", "status"))
        self.latency = Histogram(p + "request_duration_seconds",
                                 "Time from request to response headers (to the end for "
                                 "non-streaming requests).", ("model",), LATENCY_BUCKETS)
        self.overhead = Histogram(p + "overhead_seconds",
                                  "Time the gateway added: total minus time spent waiting "
                                  "for the upstream.", ("model",), OVERHEAD_BUCKETS)
        self.upstream_errors = Counter(p + "upstream_errors_total",
                                       "Failed upstream attempts, by backend and kind.",
                                       ("pool", "backend", "kind"))
        self.retries = Counter(p + "retries_total", "Attempts after the first, by model.",
                               ("model",))
        self.panic_routed = Counter(p + "panic_routed_total",
                                    "Requests sent to ejected backends because nothing of "
                                    "the model was usable (panic threshold).", ("model",))
        self.stream_errors = Counter(p + "stream_errors_total",
                                     "Streams ended with an error event after they started.",
                                     ("model",))
        self.wakes = Counter(p + "wakes_total", "Wake requests sent to the bridge.",
                             ("group", "outcome"))
        self.usage_dropped = Counter(p + "usage_rows_dropped_total",
                                     "Usage rows lost because the database stayed unreachable.",
                                     ())
        self.gauges: list[Gauge] = []

    def gauge(self, name: str, help_text: str, label_names: Labels,
              collect: Callable[[], Iterable[tuple[Labels, float]]],
              merge: str = "sum") -> None:
        self.gauges.append(Gauge("heteroflow_gateway_" + name, help_text, label_names, collect,
                                 merge))

    def families(self) -> tuple[Counter | Histogram | Gauge, ...]:
        return (self.requests, self.latency, self.overhead, self.upstream_errors,
                self.retries, self.panic_routed, self.stream_errors, self.wakes,
                self.usage_dropped, *self.gauges)

    def export(self) -> dict[str, list[Any]]:
        """This worker's numbers, JSON-ready (for the other workers' scrapes)."""
        return {f.name: f.export() for f in self.families()}

    def render(self, others: Iterable[dict[str, list[Any]]] = ()) -> str:
        """The exposition of this worker's numbers merged with other workers' exports."""
        mine = self.export()
        others = list(others)
        lines: list[str] = []
        for family in self.families():
            rows = mine.get(family.name, [])
            if others:
                rows = _merge(family, [rows, *(o.get(family.name, []) for o in others)])
            lines.extend(family.render(rows))
        return "\n".join(lines) + "\n"


def _merge(family: Counter | Histogram | Gauge, parts: list[list[Any]]) -> list[Any]:
    merged: dict[tuple[str, ...], Any] = {}
    for rows in parts:
        for row in rows:
            key = tuple(row[0])
            if isinstance(family, Histogram):
                if key in merged:
                    old = merged[key]
                    merged[key] = [row[0], [a + b for a, b in zip(old[1], row[1], strict=True)],
                                   old[2] + row[2]]
                else:
                    merged[key] = [row[0], list(row[1]), row[2]]
            elif key not in merged:
                merged[key] = [row[0], row[1]]
            elif isinstance(family, Gauge) and family.merge in ("max", "min"):
                pick = max if family.merge == "max" else min
                merged[key][1] = pick(merged[key][1], row[1])
            else:
                merged[key][1] += row[1]
    return list(merged.values())


def _fmt(names: Labels, values: Labels) -> str:
    if not names:
        return ""
    inner = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))
