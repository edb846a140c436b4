"""The event broker behind `/v1/event/stream`: a ring of index batches and subscriptions.

Like Nomad's, the buffer keeps the last `buffer_size` batches; a subscriber asking for an index
older than the oldest retained batch silently starts at the oldest one (a gap it must detect by
reconciling). `index` is inclusive. Tests can force gaps (`drop_until`) or cut every open
stream (`close_all`).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """One event, serialized once at commit time so later mutations cannot leak into it."""

    topic: str
    key: str
    namespace: str
    filter_keys: tuple[str, ...]
    text: str

    @classmethod
    def build(cls, topic: str, event_type: str, key: str, namespace: str,
              filter_keys: list[str], index: int, payload: dict[str, Any]) -> Event:
        body = {"Topic": topic, "Type": event_type, "Key": key, "Namespace": namespace,
                "FilterKeys": filter_keys or None, "Index": index, "Payload": payload}
        return cls(topic, key, namespace, tuple(filter_keys),
                   json.dumps(body, separators=(",", ":")))


@dataclass
class Batch:
    index: int
    events: list[Event]


@dataclass(eq=False)
class Subscription:
    """A stream's position and filter; `topics` maps topic -> filter keys ("*" = any)."""

    topics: dict[str, list[str]]
    namespace: str
    next_index: int
    closed: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, event: Event) -> bool:
        if self.namespace != "*" and event.namespace not in ("", self.namespace):
            return False
        for topic in (event.topic, "*"):
            for key in self.topics.get(topic, ()):
                if key in ("*", event.key) or key in event.filter_keys:
                    return True
        return False


class EventBroker:
    """Publishes committed batches to open subscriptions."""

    def __init__(self, buffer_size: int = 100) -> None:
        self._buffer: deque[Batch] = deque(maxlen=buffer_size)
        self._subscriptions: set[Subscription] = set()

    def publish(self, index: int, events: list[Event]) -> None:
        if not events:
            return
        self._buffer.append(Batch(index, events))
        for sub in self._subscriptions:
            sub._wake.set()

    def subscribe(self, topics: dict[str, list[str]], namespace: str,
                  index: int) -> Subscription:
        sub = Subscription(topics=topics, namespace=namespace, next_index=index)
        self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    async def next_batch(self, sub: Subscription, within: float) -> tuple[int, str] | None:
        """The next matching batch as (index, NDJSON line), or None on timeout or close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not sub.closed:
            for batch in self._buffer:
                if batch.index < sub.next_index:
                    continue
                sub.next_index = batch.index + 1
                matching = [e.text for e in batch.events if sub.matches(e)]
                if matching:
                    events = ",".join(matching)
                    return batch.index, f'{{"Index":{batch.index},"Events":[{events}]}}'
            sub._wake.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(sub._wake.wait(), remaining)
            except TimeoutError:
                return None
        return None

    def drop_until(self, index: int) -> None:
        """Forget batches below `index`: a consumer resuming from before it gets a gap."""
        while self._buffer and self._buffer[0].index < index:
            self._buffer.popleft()

    def close_all(self) -> None:
        for sub in list(self._subscriptions):
            sub.closed = True
            sub._wake.set()
        self._subscriptions.clear()

    @property
    def open_streams(self) -> int:
        return len(self._subscriptions)
