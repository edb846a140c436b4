"""A client for Nomad device plugins that does what Nomad's plugin loader does with
go-plugin: launch the executable with the magic cookie and the protocol versions in its
environment, read and check the handshake line, dial the address it names, check the
"plugin" health service, open the broker and stdio streams, and call the plugin's RPCs;
closing asks GRPCController.Shutdown and waits for the process to exit (killing it only
if it does not)."""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import msgpack
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agent_plugin.nomad_device.goplugin import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE
from agent_plugin.nomad_device.protos import Protos, protos

PLUGIN_EXECUTABLE = Path(sys.executable).parent / "heteroflow-gpu"
HANDSHAKE_TIMEOUT_S = 60.0  # go-plugin's default StartTimeout
RPC_TIMEOUT_S = 30.0


class PluginStartFailed(RuntimeError):
    def __init__(self, message: str, returncode: int | None, stderr: str) -> None:
        super().__init__(f"{message} (exit status {returncode}); stderr:\n{stderr}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True, slots=True)
class Handshake:
    core_version: int
    app_version: int
    network: str
    address: str
    protocol: str


def parse_handshake(line: str) -> Handshake:
    parts = line.strip().split("|")
    if len(parts) < 5:
        raise ValueError(f"unrecognised plugin handshake: {line!r}")
    return Handshake(core_version=int(parts[0]), app_version=int(parts[1]),
                     network=parts[2], address=parts[3], protocol=parts[4])


class PluginClient:
    def __init__(self, executable: Path = PLUGIN_EXECUTABLE, *,
                 env: Mapping[str, str] | None = None, cookie: str = MAGIC_COOKIE_VALUE,
                 socket_dir: Path | None = None, protocol_versions: str = "2") -> None:
        self.pb: Protos = protos()
        full_env = {**os.environ, **(env or {}), MAGIC_COOKIE_KEY: cookie,
                    "PLUGIN_MIN_PORT": "0", "PLUGIN_MAX_PORT": "0",
                    "PLUGIN_PROTOCOL_VERSIONS": protocol_versions}
        if socket_dir is not None:
            full_env["PLUGIN_UNIX_SOCKET_DIR"] = str(socket_dir)
        self._stderr: list[str] = []
        self.process = subprocess.Popen(
            [str(executable)], env=full_env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._readers = [threading.Thread(target=self._drain_stderr, daemon=True)]
        self._readers[0].start()
        self.channel: grpc.Channel | None = None
        self._streams: list[Any] = []
        try:
            self.handshake = self._read_handshake()
            self._connect()
        except BaseException:
            self.kill()
            raise

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def _read_handshake(self) -> Handshake:
        assert self.process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=HANDSHAKE_TIMEOUT_S)
        except queue.Empty:
            raise PluginStartFailed("timeout while waiting for plugin to start", None,
                                    self.stderr) from None
        if not line:
            code = self.process.wait(timeout=10)
            for reader in self._readers:
                reader.join(timeout=5)
            raise PluginStartFailed("plugin exited before we could connect", code,
                                    self.stderr)
        handshake = parse_handshake(line)
        # the checks go-plugin's client makes on the line
        if handshake.core_version != 1:
            raise ValueError(f"incompatible core API version {handshake.core_version}")
        if handshake.app_version != 2:
            raise ValueError(f"incompatible plugin protocol version {handshake.app_version}")
        if handshake.protocol != "grpc":
            raise ValueError(f"unsupported plugin protocol {handshake.protocol!r}")
        if handshake.network not in ("unix", "tcp"):
            raise ValueError(f"unknown address type {handshake.network!r}")
        return handshake

    def _connect(self) -> None:
        target = (f"unix://{self.handshake.address}" if self.handshake.network == "unix"
                  else self.handshake.address)
        self.channel = grpc.insecure_channel(target)
        grpc.channel_ready_future(self.channel).result(timeout=RPC_TIMEOUT_S)
        answer = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service="plugin"), timeout=RPC_TIMEOUT_S)
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(f"plugin health is {answer.status}")
        # go-plugin's client opens the broker stream and reads stdio on every connection
        broker = self.pb.broker_grpc.GRPCBrokerStub(self.channel).StartStream(iter(()))
        stdio = self.pb.stdio_grpc.GRPCStdioStub(self.channel).StreamStdio(
            self._empty())
        self._streams += [broker, stdio]
        self.base = self.pb.base_grpc.BasePluginStub(self.channel)
        self.device = self.pb.device_grpc.DevicePluginStub(self.channel)

    @staticmethod
    def _empty() -> Any:
        from google.protobuf import empty_pb2

        return empty_pb2.Empty()

    # -- the calls Nomad makes

    def plugin_info(self) -> Any:
        return self.base.PluginInfo(self.pb.base.PluginInfoRequest(), timeout=RPC_TIMEOUT_S)

    def config_schema(self) -> Any:
        return self.base.ConfigSchema(self.pb.base.ConfigSchemaRequest(),
                                      timeout=RPC_TIMEOUT_S)

    def set_config(self, config: Mapping[str, Any], api_version: str = "v0.1.0") -> Any:
        return self.base.SetConfig(self.pb.base.SetConfigRequest(
            msgpack_config=msgpack.packb(dict(config)), plugin_api_version=api_version,
            nomad_config=self.pb.base.NomadConfig()), timeout=RPC_TIMEOUT_S)

    def fingerprint(self, timeout_s: float = 120.0) -> Iterator[Any]:
        """The stream of fingerprints (Nomad's has no deadline; a test's must)."""
        stream = self.device.Fingerprint(self.pb.device.FingerprintRequest(),
                                         timeout=timeout_s)
        self._streams.append(stream)
        return stream  # type: ignore[no-any-return]

    def stats(self, interval_s: float, timeout_s: float = 120.0) -> Iterator[Any]:
        from google.protobuf import duration_pb2

        interval = duration_pb2.Duration()
        interval.FromNanoseconds(int(interval_s * 1e9))
        stream = self.device.Stats(self.pb.device.StatsRequest(collection_interval=interval),
                                   timeout=timeout_s)
        self._streams.append(stream)
        return stream  # type: ignore[no-any-return]

    def reserve(self, device_ids: list[str]) -> Any:
        return self.device.Reserve(self.pb.device.ReserveRequest(device_ids=device_ids),
                                   timeout=RPC_TIMEOUT_S)

    # -- ending it

    def close(self) -> int:
        """Shutdown through GRPCController, as go-plugin's Kill does; force only after a
        grace period. Returns the exit status."""
        for stream in self._streams:
            with contextlib.suppress(Exception):
                stream.cancel()
        if self.channel is not None and self.process.poll() is None:
            with contextlib.suppress(grpc.RpcError):
                self.pb.controller_grpc.GRPCControllerStub(self.channel).Shutdown(
                    self.pb.controller.Empty(), timeout=RPC_TIMEOUT_S)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait()
        self._finish()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._finish()

    def _finish(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        for reader in self._readers:
            reader.join(timeout=5)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> PluginClient:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None or self.channel is not None:
            self.close()
