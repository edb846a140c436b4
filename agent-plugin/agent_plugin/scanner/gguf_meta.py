"""A lean reader of a GGUF file's header: its metadata and tensor shapes, nothing else.

``gguf.GGUFReader`` builds a numpy view for every element of every array field; for a
model with a 49k-token vocabulary that takes ~2 s per file, far too slow for a scanner.
This reader walks the same layout (GGUF v2/v3, either byte order) over a memory map,
keeps scalars and small numeric arrays, and skips large arrays (the tokenizer) by length.
Value types and quantisation names come from the ``gguf`` package; the tests check the
result against ``GGUFReader`` on real files.

Layout: magic "GGUF", u32 version, u64 tensor count, u64 key/value count; then each key
(u64 length + UTF-8) with a u32 value type and its value (strings are u64 length + bytes,
arrays a u32 item type, a u64 count and the items); then each tensor's name, u32 number of
dimensions, u64 dimensions, u32 ggml type and u64 data offset.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGUFValueType

from agent_plugin.errors import ModelUnreadable

_SCALARS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "B", GGUFValueType.INT8: "b", GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h", GGUFValueType.UINT32: "I", GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f", GGUFValueType.BOOL: "?", GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q", GGUFValueType.FLOAT64: "d",
}
# numeric arrays up to this long are kept (per-layer head counts); longer ones are skipped
_KEEP_ARRAY_ITEMS = 1024


@dataclass(frozen=True, slots=True)
class GgufTensor:
    name: str
    shape: tuple[int, ...]
    ggml_type: int

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True, slots=True)
class GgufHeader:
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)  # large arrays: their length
    tensors: tuple[GgufTensor, ...] = ()


def read_gguf_header(path: Path) -> GgufHeader:
    try:
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _Parser(mm, str(path)).header()
    except (OSError, ValueError) as exc:  # empty files cannot be mapped
        raise ModelUnreadable(f"{path} cannot be read as GGUF: {exc}") from None


class _Parser:
    def __init__(self, buf: mmap.mmap, name: str) -> None:
        self.buf = buf
        self.name = name
        self.pos = 0
        self.order = "<"

    def header(self) -> GgufHeader:
        if self.buf[:4] != b"GGUF":
            raise ModelUnreadable(f"{self.name} is not a GGUF file (bad magic)")
        try:
            return self._header()
        except (struct.error, IndexError) as exc:
            raise ModelUnreadable(f"{self.name} ends inside its GGUF header") from exc
        except ValueError as exc:  # an unknown value type, or bad UTF-8
            raise ModelUnreadable(f"{self.name} has a malformed GGUF header: {exc}") from exc

    def _header(self) -> GgufHeader:
        self.pos = 4
        version = self._scalar("I")
        if version > 0xFFFF:  # written big-endian
            self.order = ">"
            self.pos = 4
            version = self._scalar("I")
        if version < 2:
            raise ModelUnreadable(f"{self.name} is GGUF v{version}; only v2 and v3 are read")
        tensor_count, kv_count = self._scalar("Q"), self._scalar("Q")
        metadata = {}
        for _ in range(kv_count):
            key = self._string()
            metadata[key] = self._value(GGUFValueType(self._scalar("I")))
        tensors = tuple(self._tensor() for _ in range(tensor_count))
        return GgufHeader(version=version, metadata=metadata, tensors=tensors)

    def _scalar(self, fmt: str) -> Any:
        spec = self.order + fmt
        (value,) = struct.unpack_from(spec, self.buf, self.pos)
        self.pos += struct.calcsize(spec)
        return value

    def _string(self) -> str:
        length = self._scalar("Q")
        end = self.pos + length
        if end > len(self.buf):
            raise IndexError("string past the end of the file")
        raw = self.buf[self.pos:end]
        self.pos = end
        return raw.decode("utf-8")

    def _value(self, kind: GGUFValueType) -> Any:
        if kind == GGUFValueType.STRING:
            return self._string()
        if kind == GGUFValueType.ARRAY:
            item = GGUFValueType(self._scalar("I"))
            count = self._scalar("Q")
            if item in _SCALARS and count <= _KEEP_ARRAY_ITEMS:
                return [self._scalar(_SCALARS[item]) for _ in range(count)]
            self._skip_array(item, count)
            return count
        return self._scalar(_SCALARS[kind])

    def _skip_array(self, item: GGUFValueType, count: int) -> None:
        if item in _SCALARS:
            self.pos += count * struct.calcsize(_SCALARS[item])
        elif item == GGUFValueType.STRING:
            spec = self.order + "Q"
            for _ in range(count):
                (length,) = struct.unpack_from(spec, self.buf, self.pos)
                self.pos += 8 + length
        else:
            for _ in range(count):
                self._value(item)
        if self.pos > len(self.buf):
            raise IndexError("array past the end of the file")

    def _tensor(self) -> GgufTensor:
        name = self._string()
        dims = tuple(self._scalar("Q") for _ in range(self._scalar("I")))
        ggml_type = self._scalar("I")
        self._scalar("Q")  # data offset
        return GgufTensor(name=name, shape=dims, ggml_type=ggml_type)
