"""The plugin's ``config`` block in the Nomad client's ``plugin "heteroflow-gpu"`` stanza.

Nomad parses the block with the schema the plugin returns from ConfigSchema (every key has
a default there, so Nomad fills them in) and sends the result to SetConfig as MessagePack.
The same keys let tests point the detectors at recorded vendor-tool outputs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_plugin.settings import VENDOR_TOOL_DIRS
from heteroflow_contracts.gpu_sharing import MAX_SHARES
from heteroflow_contracts.vendors import VENDORS

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ConfigError(ValueError):
    """The config block has a wrong value; the message names the key."""


@dataclass(frozen=True, slots=True)
class Key:
    """One config key: its HCL type expression and its default as an HCL expression."""

    hcl_type: str
    default: str
    doc: str


KEYS: dict[str, Key] = {
    "enabled": Key("bool", "true", "false reports no devices"),
    "fingerprint_period": Key("string", '"1m"', "how often the vendor tools are asked"),
    "vendors": Key("list(string)", json.dumps(list(VENDORS)), "which detectors run"),
    "tool_path": Key("string", '""', "search path for vendor tools; empty: PATH and the "
                     "vendors' install folders"),
    "tool_timeout": Key("string", '"10s"', "a vendor tool taking longer is a failure"),
    "gpu_inventory": Key("string", '""', "a JSON inventory file, as the agent's"),
    "sysfs_root": Key("string", '"/sys"', "where AMD's sysfs fallback and the PCI "
                                         "topology (p2p) are read"),
    "host_root": Key("string", '"/"', "where /dev and driver folders are looked up"),
    "nvml": Key("bool", "true", "false: NVIDIA devices come from nvidia-smi only"),
    "shares": Key("map(number)", "{}", "device ID -> K: offer that GPU as K shares "
                  "(<vendor>/gpu-share) instead of whole (docs/gpu-sharing.md)"),
    "share_layout": Key("string", '""', "a JSON file {device ID: K} re-read every "
                        "fingerprint period, written by the agent when the bridge asks; "
                        "it overrides shares"),
}


@dataclass(frozen=True, slots=True)
class PluginConfig:
    enabled: bool = True
    fingerprint_period_s: float = 60.0
    vendors: tuple[str, ...] = VENDORS
    tool_path: str = ""
    tool_timeout_s: float = 10.0
    gpu_inventory: Path | None = None
    sysfs_root: Path = Path("/sys")
    host_root: Path = Path("/")
    nvml: bool = True
    shares: tuple[tuple[str, int], ...] = ()
    share_layout: Path | None = None

    def layout(self) -> dict[str, int]:
        """Which GPUs are shared, and in how many shares: the config's ``shares``, then
        the layout file over it. A file that cannot be read or parsed leaves the config's
        layout in force (logged by the caller), so a half-written file never un-shares."""
        found = dict(self.shares)
        if self.share_layout is not None and self.share_layout.is_file():
            found.update(parse_shares(json.loads(self.share_layout.read_text()),
                                      str(self.share_layout)))
        return found

    def tool_search_path(self) -> str:
        if self.tool_path:
            return self.tool_path
        entries = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p]
        entries += [d for d in VENDOR_TOOL_DIRS if d not in entries]
        return os.pathsep.join(entries)

    def detector_names(self) -> list[str]:
        names = list(self.vendors)
        return [*names, "static"] if self.gpu_inventory is not None else names


def parse_config(raw: Mapping[str, Any]) -> PluginConfig:
    """The config from SetConfig's decoded MessagePack (missing keys take defaults, as they
    do when a test sends a partial block)."""
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(unknown)}")
    vendors = raw.get("vendors", list(VENDORS))
    if not isinstance(vendors, list) or not all(isinstance(v, str) for v in vendors):
        raise ConfigError("vendors must be a list of strings")
    bad = [v for v in vendors if v not in VENDORS]
    if bad:
        raise ConfigError(f"vendors: no detector for {', '.join(bad)}; known: "
                          f"{', '.join(VENDORS)}")
    period = parse_duration(_str(raw, "fingerprint_period", "1m"), "fingerprint_period")
    timeout = parse_duration(_str(raw, "tool_timeout", "10s"), "tool_timeout")
    inventory = _str(raw, "gpu_inventory", "")
    layout_file = _str(raw, "share_layout", "")
    shares = parse_shares(raw.get("shares") or {}, "shares")
    return PluginConfig(
        enabled=_bool(raw, "enabled", True), fingerprint_period_s=period,
        vendors=tuple(dict.fromkeys(vendors)), tool_path=_str(raw, "tool_path", ""),
        tool_timeout_s=timeout, gpu_inventory=Path(inventory) if inventory else None,
        sysfs_root=Path(_str(raw, "sysfs_root", "/sys")),
        host_root=Path(_str(raw, "host_root", "/")), nvml=_bool(raw, "nvml", True),
        shares=tuple(sorted(shares.items())),
        share_layout=Path(layout_file) if layout_file else None)


def parse_shares(raw: object, key: str) -> dict[str, int]:
    """{device ID: K} with 1 <= K <= 8 (the seed's models per GPU)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{key} must map device IDs to a number of shares")
    out: dict[str, int] = {}
    for device, k in raw.items():
        if not isinstance(device, str) or isinstance(k, bool) or not isinstance(
                k, (int, float)) or int(k) != k or not 1 <= k <= MAX_SHARES:
            raise ConfigError(f"{key}: {device!r} must have a whole number of shares "
                              f"from 1 to {MAX_SHARES}, not {k!r}")
        out[device] = int(k)
    return out


def parse_duration(text: str, key: str) -> float:
    """A Go duration ("1m", "1m30s", "250ms") in seconds; it must be positive."""
    compact = text.strip()
    parts = _DURATION_PART.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ConfigError(f"{key}: {text!r} is not a duration such as \"30s\" or \"1m\"")
    seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"{key} must be longer than zero")
    return seconds


def _str(raw: Mapping[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value


def _bool(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false")
    return value
