"""Exponential backoff for reports: the first retry soon, each next one twice as late, never
later than the regular interval (a long outage then costs one attempt per interval)."""

from __future__ import annotations


class Backoff:
    def __init__(self, first_s: float, cap_s: float) -> None:
        self.first_s, self.cap_s = first_s, cap_s
        self.failures = 0

    def failed(self) -> float:
        """Record a failure; the seconds to wait before the next attempt."""
        self.failures += 1
        return min(self.first_s * 2.0 ** min(self.failures - 1, 30), self.cap_s)

    def succeeded(self) -> None:
        self.failures = 0
