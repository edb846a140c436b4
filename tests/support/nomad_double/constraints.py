"""Constraint operands, node/device target resolution, versions and unit-aware attributes.

Node constraints compare strings (`checkConstraint` in Nomad's scheduler): `<`/`>` try integers,
then floats, then lexical order. Device constraints compare typed attributes
(`checkAttributeConstraint`): "40 GiB" is parsed into a number with a unit and compared against
`memory = 81920 MiB` in bytes. `version` follows hashicorp/go-version (pre-releases only match
pre-release constraints); `semver` compares plain semantic versions.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]

# name -> (family, multiplier); watts in milliwatts so every multiplier is an integer.
_UNITS: dict[str, tuple[str, int]] = {}
for _i, _n in enumerate(("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"), start=1):
    _UNITS[_n] = ("byte", 1024 ** _i)
    _UNITS[_n + "/s"] = ("byte_rate", 1024 ** _i)
for _i, _n in enumerate(("kB", "MB", "GB", "TB", "PB", "EB"), start=1):
    _UNITS[_n] = ("byte", 1000 ** _i)
    _UNITS[_n + "/s"] = ("byte_rate", 1000 ** _i)
_UNITS["KB"] = ("byte", 1000)
_UNITS["KB/s"] = ("byte_rate", 1000)
_UNITS.update({"MHz": ("hertz", 10 ** 6), "GHz": ("hertz", 10 ** 9), "mW": ("watt", 1),
               "W": ("watt", 10 ** 3), "kW": ("watt", 10 ** 6), "MW": ("watt", 10 ** 9),
               "GW": ("watt", 10 ** 12)})
_UNITS_BY_LENGTH = sorted(_UNITS, key=len, reverse=True)
UNITS = frozenset(_UNITS)  # plugins/shared/structs/units.go: the units Nomad accepts


@dataclass(frozen=True)
class Attribute:
    """A device attribute value: exactly one of the typed values, plus an optional unit."""

    int_val: int | None = None
    float_val: float | None = None
    str_val: str | None = None
    bool_val: bool | None = None
    unit: str = ""

    @classmethod
    def from_json(cls, data: Json) -> Attribute:
        return cls(int_val=data.get("Int"), float_val=data.get("Float"),
                   str_val=data.get("String"), bool_val=data.get("Bool"),
                   unit=data.get("Unit") or "")

    @classmethod
    def parse(cls, text: str) -> Attribute:
        """psstructs.ParseAttribute: "40 GiB" -> Int 40 GiB, "true" -> Bool, else String."""
        if not text:
            return cls(str_val=text)
        unit = ""
        numeric = text
        if text[-1].isalpha():
            for name in _UNITS_BY_LENGTH:
                if text.endswith(name):
                    unit = name
                    numeric = text[: -len(name)].strip()
                    break
        if re.fullmatch(r"[+-]?\d+", numeric):
            return cls(int_val=int(numeric), unit=unit)
        try:
            return cls(float_val=float(numeric), unit=unit)
        except ValueError:
            pass
        if text.lower() in ("1", "t", "true", "0", "f", "false"):
            return cls(bool_val=text.lower() in ("1", "t", "true"))
        return cls(str_val=text)

    def as_string(self) -> str | None:
        return self.str_val

    def compare(self, other: Attribute) -> int | None:
        """-1/0/1, or None when the two are not comparable (types or unit families differ)."""
        mine, theirs = _UNITS.get(self.unit), _UNITS.get(other.unit)
        if (mine is None) != (theirs is None):
            return None
        if mine is not None and theirs is not None and mine[0] != theirs[0]:
            return None
        if mine is None:
            if self.str_val is not None or other.str_val is not None:
                if self.str_val is None or other.str_val is None:
                    return None
                return _cmp(self.str_val, other.str_val)
            if self.bool_val is not None or other.bool_val is not None:
                if self.bool_val is None or other.bool_val is None:
                    return None
                return 0 if self.bool_val == other.bool_val else 1
        left, right = self._number(), other._number()
        if left is None or right is None:
            return None
        return _cmp(left, right)

    def _number(self) -> float | int | None:
        value: float | int | None = self.int_val if self.int_val is not None else self.float_val
        if value is None:
            return None
        multiplier = _UNITS[self.unit][1] if self.unit in _UNITS else 1
        return value * multiplier


def _cmp(left: Any, right: Any) -> int:
    return int(left > right) - int(left < right)


def resolve_node_target(target: str, node: Json) -> tuple[str | None, bool]:
    """Nomad's resolveTarget: a literal, or one of the node interpolations."""
    if not target.startswith("${"):
        return target, True
    simple = {"${node.unique.id}": "ID", "${node.datacenter}": "Datacenter",
              "${node.unique.name}": "Name", "${node.class}": "NodeClass",
              "${node.pool}": "NodePool"}
    if target in simple:
        return node.get(simple[target]) or "", True
    if target.startswith("${attr."):
        value = (node.get("Attributes") or {}).get(target[len("${attr."):].rstrip("}"))
        return value, value is not None
    if target.startswith("${meta."):
        value = (node.get("Meta") or {}).get(target[len("${meta."):].rstrip("}"))
        return value, value is not None
    return None, False


def escapes_class(target: str) -> bool:
    """Targets whose value differs per node, so a per-class feasibility cache cannot be used."""
    return target.startswith(("${node.unique.", "${attr.unique.", "${meta.unique."))


def check_node_constraint(constraint: Json, node: Json) -> bool:
    operand = constraint.get("Operand") or "="
    left, left_ok = resolve_node_target(constraint.get("LTarget") or "", node)
    right, right_ok = resolve_node_target(constraint.get("RTarget") or "", node)
    return check_operand(operand, left, right, left_ok, right_ok)


def check_operand(operand: str, left: str | None, right: str | None, left_ok: bool,
                  right_ok: bool) -> bool:
    if operand in ("distinct_hosts", "distinct_property"):
        return True
    if operand in ("=", "==", "is"):
        return left_ok and right_ok and left == right
    if operand in ("!=", "not"):
        return left != right
    if operand in ("<", "<=", ">", ">="):
        return left_ok and right_ok and left is not None and right is not None and _order(
            operand, left, right)
    if operand == "is_set":
        return left_ok
    if operand == "is_not_set":
        return not left_ok
    if not (left_ok and right_ok and left is not None and right is not None):
        return False
    if operand == "version":
        return version_matches(left, right, semver=False)
    if operand == "semver":
        return version_matches(left, right, semver=True)
    if operand == "regexp":
        pattern = _regexp(right)
        return pattern is not None and pattern.search(left) is not None
    if operand in ("set_contains", "set_contains_all"):
        have = {p.strip() for p in left.split(",")}
        return all(p.strip() in have for p in right.split(","))
    if operand == "set_contains_any":
        have = {p.strip() for p in left.split(",")}
        return any(p.strip() in have for p in right.split(","))
    return False


def check_device_constraint(operand: str, left: Attribute | None, right: Attribute | None) -> bool:
    """checkAttributeConstraint: typed comparison with units; missing values never match."""
    if operand in ("distinct_hosts", "distinct_property"):
        return True
    if operand == "is_set":
        return left is not None
    if operand == "is_not_set":
        return left is None
    if operand in ("!=", "not"):
        if left is None and right is None:
            return False
        if (left is None) != (right is None):
            return True
        assert left is not None and right is not None
        result = left.compare(right)
        return result is not None and result != 0
    if left is None or right is None:
        return False
    if operand in ("<", "<=", ">", ">=", "=", "==", "is"):
        result = left.compare(right)
        if result is None:
            return False
        return {"<": result == -1, "<=": result != 1, ">": result == 1, ">=": result != -1
                }.get(operand, result == 0)
    if operand in ("version", "semver"):
        text = left.str_val if left.str_val is not None else (
            str(left.int_val) if left.int_val is not None else None)
        if text is None or right.str_val is None:
            return False
        return version_matches(text, right.str_val, semver=operand == "semver")
    left_s, right_s = left.as_string(), right.as_string()
    if left_s is None or right_s is None:
        return False
    return check_operand(operand, left_s, right_s, True, True)


def resolve_device_target(target: str, device: Json) -> Attribute | None:
    if not target.startswith("${"):
        return Attribute.parse(target)
    if target == "${device.ids}":
        return Attribute(str_val=",".join(i["ID"] for i in device.get("Instances") or []))
    if target == "${device.model}":
        return Attribute(str_val=device.get("Name") or "")
    if target == "${device.vendor}":
        return Attribute(str_val=device.get("Vendor") or "")
    if target == "${device.type}":
        return Attribute(str_val=device.get("Type") or "")
    if target.startswith("${device.attr."):
        raw = (device.get("Attributes") or {}).get(target[len("${device.attr."):].rstrip("}"))
        return Attribute.from_json(raw) if raw is not None else None
    return None


def _order(operand: str, left: str, right: str) -> bool:
    pair: tuple[Any, Any]
    if re.fullmatch(r"[+-]?\d+", left) and re.fullmatch(r"[+-]?\d+", right):
        pair = (int(left), int(right))
    else:
        try:
            pair = (float(left), float(right))
        except ValueError:
            pair = (left, right)
    result = _cmp(*pair)
    return {"<": result < 0, "<=": result <= 0, ">": result > 0, ">=": result >= 0}[operand]


@functools.lru_cache(maxsize=512)
def _regexp(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


_VERSION = re.compile(
    r"^v?(\d+(?:\.\d+)*)"
    r"(?:-?((?:[0-9A-Za-z~-]+)(?:\.[0-9A-Za-z~-]+)*))?"
    r"(?:\+([0-9A-Za-z~-]+(?:\.[0-9A-Za-z~-]+)*))?$")
_CONSTRAINT = re.compile(r"^\s*(=|!=|>=|<=|>|<|~>)?\s*(\S+)\s*$")


@dataclass(frozen=True)
class Version:
    """A go-version Version: numeric segments (padded to 3) and a pre-release string."""

    segments: tuple[int, ...]
    pre: str
    declared: int

    @classmethod
    def parse(cls, text: str, semver: bool = False) -> Version | None:
        match = _VERSION.match(text.strip())
        if match is None:
            return None
        segments = tuple(int(s) for s in match.group(1).split("."))
        if semver and len(segments) > 3:
            return None
        declared = len(segments)
        segments = segments + (0,) * max(0, 3 - len(segments))
        return cls(segments=segments, pre=match.group(2) or "", declared=declared)

    def compare(self, other: Version) -> int:
        width = max(len(self.segments), len(other.segments))
        mine = self.segments + (0,) * (width - len(self.segments))
        theirs = other.segments + (0,) * (width - len(other.segments))
        if mine != theirs:
            return _cmp(mine, theirs)
        if self.pre == other.pre:
            return 0
        if not self.pre:
            return 1
        if not other.pre:
            return -1
        return _compare_prerelease(self.pre, other.pre)


def _compare_prerelease(left: str, right: str) -> int:
    for a, b in zip(left.split("."), right.split("."), strict=False):
        if a == b:
            continue
        if a.isdigit() and b.isdigit():
            return _cmp(int(a), int(b))
        if a.isdigit() != b.isdigit():
            return -1 if a.isdigit() else 1
        return _cmp(a, b)
    return _cmp(len(left.split(".")), len(right.split(".")))


def version_matches(version_text: str, constraint_text: str, semver: bool) -> bool:
    version = Version.parse(version_text)
    if version is None:
        return False
    for part in constraint_text.split(","):
        match = _CONSTRAINT.match(part)
        if match is None:
            return False
        operator = match.group(1) or "="
        if semver and operator == "~>":
            return False
        target = Version.parse(match.group(2), semver=semver)
        if target is None or not _check(operator, version, target, semver):
            return False
    return True


def _check(operator: str, version: Version, target: Version, semver: bool) -> bool:
    result = version.compare(target)
    if operator == "=":
        return result == 0
    if operator == "!=":
        return result != 0
    if not semver and not _prerelease_ok(version, target, operator):
        return False
    if operator == ">":
        return result > 0
    if operator == "<":
        return result < 0
    if operator == ">=":
        return result >= 0
    if operator == "<=":
        return result <= 0
    # "~>": at least target, and the same leading segments up to the last declared one.
    if result < 0:
        return False
    keep = max(target.declared - 1, 1)
    return version.segments[:keep] == target.segments[:keep]


def _prerelease_ok(version: Version, target: Version, operator: str) -> bool:
    if version.pre and target.pre:
        return version.segments == target.segments
    if version.pre and not target.pre:
        return False
    return not (target.pre and not version.pre and operator == "~>")
