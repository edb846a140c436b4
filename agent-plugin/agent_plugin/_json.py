"""Typed readers for JSON objects, so ``from_json`` methods fail with a clear message on a
wrong shape instead of carrying a bad value further."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ShapeError(ValueError):
    """A JSON document does not have the shape a contract names."""


def req_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ShapeError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ShapeError(f"{key!r} must be a string or null, got {type(value).__name__}")
    return value


def req_int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    # bool is an int subclass; a flag where a count belongs is a shape error
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"{key!r} must be an integer, got {type(value).__name__}")
    return value


def opt_int(data: Mapping[str, Any], key: str) -> int | None:
    if data.get(key) is None:
        return None
    return req_int(data, key)


def req_float(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ShapeError(f"{key!r} must be a number, got {type(value).__name__}")
    return float(value)


def opt_float(data: Mapping[str, Any], key: str) -> float | None:
    if data.get(key) is None:
        return None
    return req_float(data, key)


def req_bool(data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise ShapeError(f"{key!r} must be true or false, got {type(value).__name__}")
    return value


def req_list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise ShapeError(f"{key!r} must be a list, got {type(value).__name__}")
    return value


def req_object(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ShapeError(f"{what} must be an object, got {type(value).__name__}")
    return value
