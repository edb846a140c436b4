"""The Python modules for Nomad's and go-plugin's .proto files, generated with grpcio-tools
on first use and cached; nothing generated is committed.

The cache key is a hash of the .proto sources and the grpcio-tools and protobuf versions,
so an edited .proto or an upgraded protobuf runtime regenerates. Generation writes into a
fresh folder and renames it into place, so plugin processes starting together cannot see
half-written modules. The modules live under the private top-level package
``heteroflow_nomadpb`` (Nomad's own layout would make a top-level ``plugins`` package,
which is too likely to collide), so the .proto imports are prefixed while copying; the
package, message and field names, the wire contract, are untouched.

The generated modules are untyped: callers get them as ``ModuleType`` and the few message
classes they use are reached by attribute.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType

PROTO_ROOT = Path(__file__).resolve().parent / "proto"
PACKAGE = "heteroflow_nomadpb"
_FILES = (
    "plugins/shared/hclspec/hcl_spec.proto",
    "plugins/shared/structs/proto/attribute.proto",
    "plugins/shared/structs/proto/stats.proto",
    "plugins/base/proto/base.proto",
    "plugins/device/proto/device.proto",
    "goplugin/grpc_controller.proto",
    "goplugin/grpc_stdio.proto",
    "goplugin/grpc_broker.proto",
)
_lock = threading.Lock()


class ProtoGenerationFailed(RuntimeError):
    """grpcio-tools could not compile the .proto files."""


@dataclass(frozen=True, slots=True)
class Protos:
    """The generated modules: ``*_pb2`` messages and ``*_grpc`` service glue."""

    hclspec: ModuleType
    attribute: ModuleType
    stats: ModuleType
    base: ModuleType
    base_grpc: ModuleType
    device: ModuleType
    device_grpc: ModuleType
    controller: ModuleType
    controller_grpc: ModuleType
    stdio: ModuleType
    stdio_grpc: ModuleType
    broker: ModuleType
    broker_grpc: ModuleType


_loaded: Protos | None = None


def protos() -> Protos:
    """Generate (once per cache key) and import the modules."""
    global _loaded
    with _lock:
        if _loaded is None:
            folder = _generate(_cache_root())
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            _loaded = _import()
        return _loaded


def cache_key() -> str:
    digest = hashlib.sha256()
    for name in _FILES:
        digest.update(name.encode())
        digest.update((PROTO_ROOT / name).read_bytes())
    for dist in ("grpcio-tools", "protobuf"):
        digest.update(f"{dist}={metadata.version(dist)}".encode())
    return digest.hexdigest()[:16]


def _cache_root() -> Path:
    # HETEROFLOW_PROTO_CACHE lets a read-only install point somewhere writable.
    configured = os.environ.get("HETEROFLOW_PROTO_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "heteroflow" / "nomad-proto"


def _generate(root: Path) -> Path:
    target = root / cache_key()
    if (target / PACKAGE / ".complete").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".gen-", dir=root))
    try:
        _compile(staging)
        (staging / PACKAGE / ".complete").touch()
        try:
            staging.rename(target)
        except OSError:
            # another process won the race; its copy is identical
            if not (target / PACKAGE / ".complete").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _compile(out: Path) -> None:
    from grpc_tools import protoc  # a build tool: only needed when the cache is cold

    sources = out / "src"
    for name in _FILES:
        copy = sources / PACKAGE / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        lines = (PROTO_ROOT / name).read_text().splitlines()
        copy.write_text("\n".join(_prefixed(line) for line in lines) + "\n")
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = ["grpc_tools.protoc", f"-I{sources}", f"-I{well_known}", f"--python_out={out}",
            f"--grpc_python_out={out}", *(f"{PACKAGE}/{name}" for name in _FILES)]
    with _quiet_stdout():
        status = protoc.main(args)
    if status != 0:
        raise ProtoGenerationFailed(f"grpc_tools.protoc exited with status {status}")
    shutil.rmtree(sources)


def _prefixed(line: str) -> str:
    stripped = line.strip()
    if stripped.startswith('import "') and not stripped.startswith('import "google/'):
        return line.replace('import "', f'import "{PACKAGE}/', 1)
    return line


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    # protoc may print warnings to fd 1, which in the plugin is the handshake channel
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _import() -> Protos:
    def load(name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.{name}")

    return Protos(
        hclspec=load("plugins.shared.hclspec.hcl_spec_pb2"),
        attribute=load("plugins.shared.structs.proto.attribute_pb2"),
        stats=load("plugins.shared.structs.proto.stats_pb2"),
        base=load("plugins.base.proto.base_pb2"),
        base_grpc=load("plugins.base.proto.base_pb2_grpc"),
        device=load("plugins.device.proto.device_pb2"),
        device_grpc=load("plugins.device.proto.device_pb2_grpc"),
        controller=load("goplugin.grpc_controller_pb2"),
        controller_grpc=load("goplugin.grpc_controller_pb2_grpc"),
        stdio=load("goplugin.grpc_stdio_pb2"),
        stdio_grpc=load("goplugin.grpc_stdio_pb2_grpc"),
        broker=load("goplugin.grpc_broker_pb2"),
        broker_grpc=load("goplugin.grpc_broker_pb2_grpc"),
    )
