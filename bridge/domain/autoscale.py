"""The autoscaler's decision for one service in one round: pure, so it is tested as a table.

The seed's rule (docs/product.md, "scale policy"): the metric per replica above the target
and below max_replicas: +1; below the target and above min_replicas: -1. Around it:

- a missing metric is never acted on (nothing is invented); the reason is the sentence;
- the bounds come first: a service outside [min, max] (a window moved them) is brought to
  the nearest bound at once, without delay;
- up only after the metric stayed high for ``up_delay_s`` (default: the cooldown), down only
  after it stayed low for ``down_delay_s`` (default 5 minutes), so a short dip neither drops
  long streams nor flaps; and never two moves closer than ``cooldown_s``;
- no scale-up while a replica is still pending: it could not be placed, and asking for one
  more would not place it either;
- no move while a rollout (a Nomad deployment) is in progress: it is waited out, and the
  delays keep counting, so the move comes as soon as it ends;
- down only when one replica less would still be at or under the target (the metric is
  projected onto n-1 replicas), otherwise the next round would scale up again.

Every outcome, move or not, carries a sentence with the numbers; it is kept in the audit log
(on a move) and shown in the service's status (always).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DOWN_DELAY_S = 300.0

UNITS = {
    "concurrent_requests": "requests in flight per replica",
    "request_queue": "requests waiting per replica",
    "vllm_pending_requests": "requests waiting in the engine per replica",
    "vllm_running_requests": "requests running in the engine per replica",
    "gpu_utilization": "% GPU utilisation per replica",
    "cpu": "% CPU per replica",
}


@dataclass(frozen=True, slots=True)
class Inputs:
    """What one round knows about one service; times are seconds on one clock."""

    metric: str
    target: float
    value: float | None  # per replica, averaged over the window; None: missing
    missing: str  # why value is None ("" otherwise)
    replicas: int  # tasks the service has now
    pending: int  # of which not yet placed
    min_replicas: int
    max_replicas: int  # 0: no upper limit
    cooldown_s: float
    up_delay_s: float
    down_delay_s: float
    now: float
    high_since: float | None  # when the metric went above target (None: it is not)
    low_since: float | None
    last_scaled_at: float | None
    rollout: str = ""  # a deployment in progress, in words ("" when none)


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int | None  # the new count, None: leave it
    reason: str
    high_since: float | None  # carried to the next round
    low_since: float | None


def decide(i: Inputs) -> Decision:
    n, lo, hi = i.replicas, i.min_replicas, i.max_replicas
    if n < lo:
        return Decision(lo, f"scaled {n} -> {lo}: below the minimum of {lo} replicas",
                        None, None)
    if hi and n > hi:
        return Decision(hi, f"scaled {n} -> {hi}: above the maximum of {hi} replicas",
                        None, None)
    if i.value is None:
        return Decision(None, f"not scaled: {i.metric} is missing ({i.missing}); "
                              "a missing metric is never acted on", None, None)
    unit = UNITS.get(i.metric, f"{i.metric} per replica")
    v, t = i.value, i.target
    if v > t:
        since = i.high_since if i.high_since is not None else i.now
        held = i.now - since
        if hi and n >= hi:
            why = f"not scaled up: {v:g} {unit} > target {t:g}, but already at the maximum " \
                  f"of {hi} replicas"
        elif i.pending:
            why = f"not scaled up: {v:g} {unit} > target {t:g}, but {i.pending} replica" \
                  f"{'s are' if i.pending > 1 else ' is'} still pending (not placed yet); " \
                  "one more would not be placed either"
        elif held < i.up_delay_s:
            why = f"not scaled yet: {v:g} {unit} > target {t:g} for {held:.0f} of " \
                  f"{i.up_delay_s:g} s"
        elif (wait := _cooling(i)) > 0:
            why = f"not scaled yet: {v:g} {unit} > target {t:g}, but the last move was " \
                  f"{i.cooldown_s - wait:.0f} s ago (cooldown {i.cooldown_s:g} s)"
        else:
            move = f"scaled {n} -> {n + 1}: {v:g} {unit} > target {t:g} for {held:.0f} s"
            if not i.rollout:
                return Decision(n + 1, move, None, None)
            why = f"not scaled: {i.rollout}; waiting until it ends (then: {move})"
        return Decision(None, why, since, None)
    if v < t:
        since = i.low_since if i.low_since is not None else i.now
        held = i.now - since
        projected = v * n / (n - 1) if n > 1 else 0.0
        if n <= lo:
            why = f"steady: {v:g} {unit} < target {t:g}, at the minimum of {lo}"
        elif projected > t:
            why = f"not scaled down: {v:g} {unit} < target {t:g}, but {n - 1} replicas " \
                  f"would carry {projected:g} each, above the target"
        elif held < i.down_delay_s:
            why = f"not scaled down yet: {v:g} {unit} < target {t:g} for {held:.0f} of " \
                  f"{i.down_delay_s:g} s"
        elif (wait := _cooling(i)) > 0:
            why = f"not scaled down yet: {v:g} {unit} < target {t:g}, but the last move " \
                  f"was {i.cooldown_s - wait:.0f} s ago (cooldown {i.cooldown_s:g} s)"
        else:
            move = f"scaled {n} -> {n - 1}: {v:g} {unit} < target {t:g} for {held:.0f} s"
            if not i.rollout:
                return Decision(n - 1, move, None, None)
            why = f"not scaled: {i.rollout}; waiting until it ends (then: {move})"
        return Decision(None, why, None, since)
    return Decision(None, f"steady: {v:g} {unit} = target {t:g}", None, None)


def _cooling(i: Inputs) -> float:
    """Seconds of cooldown left (0: none)."""
    if i.last_scaled_at is None:
        return 0.0
    return max(0.0, i.cooldown_s - (i.now - i.last_scaled_at))
