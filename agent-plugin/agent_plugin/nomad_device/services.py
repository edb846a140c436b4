"""Nomad's BasePlugin and DevicePlugin services over the agent's detectors.

Nomad's loader calls PluginInfo and ConfigSchema when it scans plugin_dir, then SetConfig
with the client's plugin block, then streams Fingerprint and Stats for as long as the
client runs, and calls Reserve before each task that was given some of our devices.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import msgpack

from agent_plugin.nomad_device import messages
from agent_plugin.nomad_device.config import ConfigError, PluginConfig, parse_config
from agent_plugin.nomad_device.fingerprinter import Fingerprinter
from agent_plugin.nomad_device.protos import Protos
from agent_plugin.nomad_device.reservation import (
    ReservationError,
    reserve,
    with_share_limits,
)

log = logging.getLogger(__name__)

PLUGIN_NAME = "heteroflow-gpu"  # the executable's name: Nomad matches plugin blocks by it
PLUGIN_VERSION = "0.1.0"
DEVICE_API_VERSIONS = ("v0.1.0",)  # Nomad's device plugin API (plugins/device/versions.go)
_POLL_S = 1.0  # how often a waiting stream checks that its caller is still there
_DEFAULT_STATS_INTERVAL_S = 1.0


class DevicePluginService:
    """Both services' handlers (gRPC looks methods up by name on the servicer object)."""

    def __init__(self, pb: Protos, stopping: threading.Event) -> None:
        self._pb = pb
        self._stopping = stopping
        self._lock = threading.Lock()
        self._fingerprinter: Fingerprinter | None = None
        self._streams = itertools.count(1)

    def close(self) -> None:
        with self._lock:
            if self._fingerprinter is not None:
                self._fingerprinter.stop()

    def _current(self) -> Fingerprinter:
        with self._lock:
            if self._fingerprinter is None:  # Fingerprint before SetConfig: the defaults
                self._fingerprinter = Fingerprinter(PluginConfig())
                self._fingerprinter.start()
            return self._fingerprinter

    # -- BasePlugin

    def PluginInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._pb.base.PluginInfoResponse(
            type=self._pb.base.DEVICE, plugin_api_versions=list(DEVICE_API_VERSIONS),
            plugin_version=PLUGIN_VERSION, name=PLUGIN_NAME)

    def ConfigSchema(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self._pb.base.ConfigSchemaResponse(spec=messages.config_schema(self._pb))

    def SetConfig(self, request: Any, context: grpc.ServicerContext) -> Any:
        version = request.plugin_api_version
        if version and version not in DEVICE_API_VERSIONS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"plugin API version {version!r} is not one of "
                          f"{', '.join(DEVICE_API_VERSIONS)}")
        try:
            raw = msgpack.unpackb(request.msgpack_config) if request.msgpack_config else {}
            if not isinstance(raw, dict):
                raise ConfigError("the config is not a map")
            config = parse_config(raw)
        except (ConfigError, ValueError, msgpack.UnpackException) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid plugin config: {exc}")
        fingerprinter = Fingerprinter(config)
        with self._lock:
            previous, self._fingerprinter = self._fingerprinter, fingerprinter
        if previous is not None:
            previous.stop()
        fingerprinter.start()
        log.info("configured", extra={"vendors": list(config.vendors),
                                      "fingerprint_period_s": config.fingerprint_period_s})
        return self._pb.base.SetConfigResponse()

    # -- DevicePlugin

    def Fingerprint(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        # The stream must not end while the plugin runs: Nomad's device manager drops all
        # of the plugin's devices when it does. A SetConfig in between switches it over to
        # the new detection loop, which starts its versions from 0 again.
        followed: Fingerprinter | None = None
        sent = 0
        while context.is_active() and not self._stopping.is_set():
            fingerprinter = self._current()
            if fingerprinter is not followed:
                followed, sent = fingerprinter, 0
            if not fingerprinter.config.enabled:
                if sent == 0:
                    sent = 1
                    yield self._pb.device.FingerprintResponse()
                self._stopping.wait(_POLL_S)
                continue
            snapshot = fingerprinter.wait_newer(sent, _POLL_S)
            if snapshot.version > sent and not fingerprinter.stopped:
                sent = snapshot.version
                yield messages.fingerprint(self._pb, snapshot.groups)

    def Reserve(self, request: Any, context: grpc.ServicerContext) -> Any:
        fingerprinter = self._current()
        # Right after a (re)start Nomad may ask before the first detection has finished
        snapshot = fingerprinter.wait_newer(0, fingerprinter.first_detection_s())
        ids = list(request.device_ids)
        unknown = [i for i in ids if i not in snapshot.devices]
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"unknown device IDs: {', '.join(unknown)}")
        try:
            # shares resolve to their GPUs (one GPU once, however many of its shares)
            gpus = list({snapshot.devices[i].uuid: snapshot.devices[i] for i in ids}.values())
            answer = with_share_limits(
                reserve(gpus, fingerprinter.config.host_root),
                [snapshot.shares[i] for i in ids if i in snapshot.shares], gpus)
        except ReservationError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return messages.reservation(self._pb, answer)

    def Stats(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        interval = request.collection_interval.ToTimedelta().total_seconds() \
            if request.HasField("collection_interval") else 0.0
        interval = interval if interval > 0 else _DEFAULT_STATS_INTERVAL_S
        stream = next(self._streams)
        followed: Fingerprinter | None = None
        try:
            while context.is_active() and not self._stopping.is_set():
                fingerprinter = self._current()
                if fingerprinter is not followed:
                    if followed is not None:
                        followed.want_stats_every(stream, None)
                    followed = fingerprinter
                    fingerprinter.want_stats_every(stream, interval)
                    fingerprinter.wait_newer(0, interval)  # the first readings
                snapshot = fingerprinter.snapshot()
                yield messages.stats(self._pb, snapshot.groups, snapshot.taken_at)
                self._stopping.wait(interval)
        finally:
            if followed is not None:
                followed.want_stats_every(stream, None)
