"""The server side of HashiCorp go-plugin's gRPC protocol, the way Nomad launches plugins.

Nomad starts the executable with the magic cookie in the environment (a plugin started
by hand refuses to run), reads one handshake line from its stdout,
``CORE-PROTOCOL-VERSION|APP-PROTOCOL-VERSION|NETWORK-TYPE|NETWORK-ADDR|PROTOCOL``, dials
that address and checks the gRPC health service "plugin". Beside the plugin's own
services go-plugin expects GRPCBroker (the host always opens its stream), GRPCStdio (the
plugin's stdout after the handshake) and GRPCController (Shutdown, how the host ends a
plugin it is done with). Interrupts are ignored, as go-plugin does: a Ctrl-C at the
terminal reaches the plugin too, and it is the host that decides when it stops.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, TextIO

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from agent_plugin.nomad_device.protos import Protos

CORE_PROTOCOL_VERSION = 1
# Nomad's plugin handshake (plugins/base/plugin.go): app protocol 2 is Nomad 0.9+'s gRPC
MAGIC_COOKIE_KEY = "NOMAD_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255"
APP_PROTOCOL_VERSION = 2
HEALTH_SERVICE = "plugin"
NOT_A_PROGRAM = ("This binary is a plugin. These are not meant to be executed directly.\n"
                 "Please execute the program that consumes these plugins, which will\n"
                 "load any plugins automatically\n")
_WORKERS = 32  # each open stream (broker, stdio, fingerprint, stats) holds one


class HandshakeRefused(Exception):
    """The environment is not that of a go-plugin host speaking our protocol."""


def check_environment(env: dict[str, str]) -> None:
    if env.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        raise HandshakeRefused(NOT_A_PROGRAM)
    offered = env.get("PLUGIN_PROTOCOL_VERSIONS", "")
    versions = {v.strip() for v in offered.split(",") if v.strip()}
    if versions and str(APP_PROTOCOL_VERSION) not in versions:
        raise HandshakeRefused(f"the host offers plugin protocol versions {offered}; this "
                               f"plugin speaks {APP_PROTOCOL_VERSION}\n")


class StdioStream(io.TextIOBase):
    """sys.stdout after the handshake, when stdout belongs to go-plugin: what is printed
    reaches the host through GRPCStdio instead of corrupting the handshake channel."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: queue.Queue[bytes | None] = queue.Queue()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if text:
            self.chunks.put(text.encode())
        return len(text)

    def close(self) -> None:
        if not self.closed:
            self.chunks.put(None)
        super().close()


class _Controller:
    def __init__(self, pb: Protos, stopping: threading.Event) -> None:
        self._pb, self._stopping = pb, stopping

    def Shutdown(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._stopping.set()
        return self._pb.controller.Empty()


class _Stdio:
    def __init__(self, pb: Protos, stream: StdioStream, stopping: threading.Event) -> None:
        self._pb, self._stream, self._stopping = pb, stream, stopping

    def StreamStdio(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        while context.is_active() and not self._stopping.is_set():
            try:
                chunk = self._stream.chunks.get(timeout=1.0)
            except queue.Empty:
                continue
            if chunk is None:
                return
            yield self._pb.stdio.StdioData(channel=self._pb.stdio.StdioData.STDOUT, data=chunk)


class _Broker:
    def StartStream(self, requests: Iterator[Any],
                    context: grpc.ServicerContext) -> Iterator[Any]:
        # A device plugin never brokers extra connections; holding the stream open until
        # the host closes it is all go-plugin's client needs.
        for _ in requests:
            pass
        yield from ()


def serve(pb: Protos, register: Any, stopping: threading.Event,
          out: TextIO | None = None) -> None:
    """Start the gRPC server on a fresh unix socket, print the handshake line and block
    until Shutdown or SIGTERM. ``register(server)`` adds the plugin's own services."""
    out = out or sys.stdout
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=_WORKERS,
                                                    thread_name_prefix="grpc"))
    checker = health.HealthServicer()
    checker.set(HEALTH_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    stdio = StdioStream()
    pb.controller_grpc.add_GRPCControllerServicer_to_server(_Controller(pb, stopping), server)
    pb.stdio_grpc.add_GRPCStdioServicer_to_server(_Stdio(pb, stdio, stopping), server)
    pb.broker_grpc.add_GRPCBrokerServicer_to_server(_Broker(), server)
    register(server)
    socket = _socket_path()
    server.add_insecure_port(f"unix://{socket}")
    server.start()
    try:
        _group_writable(socket)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: stopping.set())
        out.write(f"{CORE_PROTOCOL_VERSION}|{APP_PROTOCOL_VERSION}|unix|{socket}|grpc|\n")
        out.flush()
        sys.stdout = stdio
        while not stopping.wait(1.0):
            pass
    finally:
        stdio.close()
        server.stop(grace=1.0).wait()
        with contextlib.suppress(FileNotFoundError):
            socket.unlink()


def _socket_path() -> Path:
    # like go-plugin: a fresh name in PLUGIN_UNIX_SOCKET_DIR, else the temp folder
    folder = os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or tempfile.gettempdir()
    fd, name = tempfile.mkstemp(prefix="plugin", dir=folder)
    os.close(fd)
    os.unlink(name)
    return Path(name)


def _group_writable(socket: Path) -> None:
    group = os.environ.get("PLUGIN_UNIX_SOCKET_GROUP")
    if not group:
        return
    import grp

    gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    os.chown(socket, -1, gid)
    socket.chmod(0o660)
