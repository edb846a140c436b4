"""Sleep and wake: one small protocol (``SleepDriver``), one driver per engine sleep API and
the pause fallback, chosen by ``Sleepers.driver``."""

from agent_plugin.lifecycle.base import SleepDriver, SleepOutcome, SleepTarget
from agent_plugin.lifecycle.registry import SLEEP_APIS, Sleepers

__all__ = ["SLEEP_APIS", "SleepDriver", "SleepOutcome", "SleepTarget", "Sleepers"]
