"""HCL2 job specifications -> the JSON Nomad's `/v1/jobs/parse` returns (a bare `api.Job`).

python-hcl2 gives a generic tree; the field table in `schema.py` maps block and attribute names
onto Nomad's JSON keys. What `jobspec2` does on top of plain decoding is reproduced here:
constraint/affinity shorthands (`distinct_hosts = true`, `regexp = "..."`), ports with a static
value moving to `ReservedPorts`, template defaults, and duration strings becoming nanoseconds.
`${...}` interpolations inside strings stay literal: the client resolves them at run time.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import hcl2
from hcl2.utils import SerializationOptions
from lark.exceptions import LarkError, UnexpectedInput

from .gotypes import DurationError, parse_duration
from .schema import BY_HCL, Field, empty, label_field

_OPTIONS = SerializationOptions(
    with_comments=False, preserve_heredocs=True, strip_string_quotes=False)
_BLOCK = "__is_block__"
_SHORTHANDS = ("version", "semver", "regexp", "set_contains_any", "set_contains_all",
               "set_contains")
_HEREDOC = re.compile(r"<<(-?)([A-Za-z][A-Za-z0-9._-]*)\r?\n(.*)", re.S)


class HclError(ValueError):
    """A job specification Nomad would refuse; str() is the text after "Failed to parse job: "."""


def parse_job(text: str) -> dict[str, Any]:
    """Parse HCL2 job text into the uncanonicalized api.Job JSON."""
    try:
        tree = hcl2.loads(text, serialization_options=_OPTIONS)
    except UnexpectedInput as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid syntax"
        raise HclError(f"input.hcl:{exc.line},{exc.column}-{exc.column + 1}: "
                       f"Invalid syntax; {first}") from exc
    except (LarkError, ValueError, RuntimeError) as exc:
        raise HclError(f"input.hcl: Invalid syntax; {exc}") from exc
    for key in tree:
        if key != "job":
            raise HclError(f'input.hcl: Unsupported block type; Blocks of type "{key}" are not '
                           "expected here.")
    blocks = _labelled_blocks(tree.get("job"), "job")
    if not blocks:
        raise HclError("input.hcl: Missing job block; A job block is required")
    if len(blocks) > 1:
        raise HclError("input.hcl: Duplicate job block; Only one job definition is permitted.")
    job_id, body = blocks[0]
    job = _struct("Job", body, label=None)
    job["ID"] = job["ID"] if job["ID"] is not None else job_id
    job["Name"] = job["Name"] if job["Name"] is not None else job_id
    for group in job["TaskGroups"] or []:
        _normalize_ports(group["Networks"])
        if group["Scaling"] is not None and not group["Scaling"]["Type"]:
            group["Scaling"]["Type"] = "horizontal"
        for task in group["Tasks"] or []:
            if task["Resources"] is not None:
                _normalize_ports(task["Resources"]["Networks"])
            for template in task["Templates"] or []:
                _normalize_template(template)
    return job


def _struct(struct: str, body: dict[str, Any], label: str | None) -> dict[str, Any]:
    out = empty(struct)
    named = label_field(struct)
    if named is not None and label is not None:
        out[named.key] = label
    fields = BY_HCL[struct]
    if struct in ("Constraint", "Affinity"):
        return _constraint(struct, body, out)
    for name, value in body.items():
        if name == _BLOCK:
            continue
        field = fields.get(name)
        if field is None:
            if _is_blocks(value):
                raise HclError(f'input.hcl: Unsupported block type; Blocks of type "{name}" '
                               "are not expected here.")
            raise HclError(f'input.hcl: Unsupported argument; An argument named "{name}" is '
                           "not expected here.")
        out[field.key] = _field(field, name, value)
    return out


def _field(field: Field, name: str, value: Any) -> Any:
    kind = field.kind
    if kind in ("obj", "objs", "objmap"):
        assert field.ref is not None
        if not _is_blocks(value):
            raise HclError(f'input.hcl: Unsupported argument; An argument named "{name}" is '
                           f'not expected here. Did you mean to define a block of type "{name}"?')
        if label_field(field.ref) is not None:
            items = [_struct(field.ref, body, label) for label, body in
                     _labelled_blocks(value, name)]
        else:
            items = [_struct(field.ref, body, None) for body in value]
        if kind == "obj":
            if len(items) > 1:
                raise HclError(f"input.hcl: Duplicate {name} block; Only one {name} block is "
                               "allowed.")
            return items[0]
        if kind == "objmap":
            return {item["Name"]: item for item in items}
        return items
    if kind == "smap":
        merged: dict[str, str] = {}
        for mapping in (value if _is_blocks(value) else [value]):
            if not isinstance(mapping, dict):
                raise HclError(f"input.hcl: Unsuitable value type; Unsuitable value for {name}: "
                               "map of string required")
            merged.update({_key(k): _as_str(_literal(v), name)
                           for k, v in mapping.items() if k != _BLOCK})
        return merged
    if kind == "hdr":
        headers: dict[str, list[str]] = {}
        for mapping in (value if _is_blocks(value) else [value]):
            for k, v in mapping.items():
                if k != _BLOCK:
                    headers[_key(k)] = [_as_str(x, name) for x in _literal(v)]
        return headers
    if kind in ("amap", "raw"):
        if _is_blocks(value):
            merged_any: dict[str, Any] = {}
            for body in value:
                merged_any.update(_generic(body))
            return merged_any
        return _literal(value)
    return _scalar(kind, name, _literal(value))


def _scalar(kind: str, name: str, value: Any) -> Any:
    if kind == "str":
        return _as_str(value, name)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise HclError(f"input.hcl: Unsuitable value type; Unsuitable value for {name}: bool "
                       "required")
    if kind == "dur":
        if isinstance(value, str):
            try:
                return parse_duration(value)
            except DurationError as exc:
                raise HclError(f"input.hcl: Unsuitable value type; Unsuitable duration value: "
                               f"{exc}") from exc
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise HclError(f"input.hcl: Unsuitable value type; Unsuitable value: expected a string "
                       f"but found {type(value).__name__}")
    if kind == "strs":
        if not isinstance(value, list):
            raise HclError(f"input.hcl: Unsuitable value type; Unsuitable value for {name}: "
                           "list of string required")
        return [_as_str(v, name) for v in value]
    if kind in ("int", "float"):
        if isinstance(value, str):
            try:
                value = float(value) if kind == "float" else int(value)
            except ValueError as exc:
                raise HclError(f"input.hcl: Unsuitable value type; Unsuitable value for {name}: "
                               "a number is required") from exc
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise HclError(f"input.hcl: Unsuitable value type; Unsuitable value for {name}: "
                           "a number is required")
        return float(value) if kind == "float" else int(value)
    raise AssertionError(kind)


def _constraint(struct: str, body: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    values = {k: _literal(v) for k, v in body.items() if k != _BLOCK}
    allowed = {"attribute", "value", "operator", *_SHORTHANDS}
    allowed |= {"weight"} if struct == "Affinity" else {"distinct_hosts", "distinct_property",
                                                        "is_set", "is_not_set"}
    for name in values:
        if name not in allowed:
            raise HclError(f'input.hcl: Unsupported argument; An argument named "{name}" is not '
                           "expected here.")
    out["LTarget"] = _as_str(values.get("attribute", ""), "attribute")
    out["RTarget"] = _as_str(values.get("value", ""), "value")
    out["Operand"] = _as_str(values.get("operator", ""), "operator")
    if struct == "Affinity" and "weight" in values:
        out["Weight"] = _scalar("int", "weight", values["weight"])
    for shorthand in _SHORTHANDS:
        if values.get(shorthand):
            out["Operand"] = shorthand
            out["RTarget"] = _as_str(values[shorthand], shorthand)
    if struct == "Constraint":
        if "distinct_hosts" in values:
            out["Operand"] = "distinct_hosts"
            out["RTarget"] = "true" if _scalar("bool", "distinct_hosts",
                                               values["distinct_hosts"]) else "false"
        if values.get("distinct_property"):
            out["Operand"] = "distinct_property"
            out["LTarget"] = _as_str(values["distinct_property"], "distinct_property")
    if not out["Operand"]:
        out["Operand"] = "="
    return out


def _normalize_ports(networks: list[dict[str, Any]] | None) -> None:
    for network in networks or []:
        ports = network["DynamicPorts"] or []
        if not ports:
            continue
        dynamic = [p for p in ports if p["Value"] <= 0]
        network["DynamicPorts"] = dynamic or None
        network["ReservedPorts"] = [p for p in ports if p["Value"] > 0] or None


def _normalize_template(template: dict[str, Any]) -> None:
    defaults = {"ChangeMode": "restart", "Perms": "0644", "Splay": 5_000_000_000,
                "ErrMissingKey": False}
    for key, value in defaults.items():
        if template[key] is None:
            template[key] = value


def _generic(body: dict[str, Any]) -> dict[str, Any]:
    """Driver config and other free-form maps: nested blocks become lists of objects."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name == _BLOCK:
            continue
        if _is_blocks(value):
            out[name] = [_generic_block(item) for item in value]
        else:
            out[_key(name)] = _literal(value)
    return out


def _generic_block(item: dict[str, Any]) -> dict[str, Any]:
    if _BLOCK in item:
        return _generic(item)
    # A labelled block inside free-form config: {"label": {...}}.
    return {_key(label): _generic_block(inner) for label, inner in item.items()}


def _is_blocks(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(
        isinstance(item, dict) and (_BLOCK in item or _is_labelled(item)) for item in value)


def _is_labelled(item: dict[str, Any]) -> bool:
    return len(item) == 1 and isinstance(next(iter(item.values())), dict) and (
        _BLOCK in next(iter(item.values())) or _is_labelled(next(iter(item.values()))))


def _labelled_blocks(value: Any, name: str) -> list[tuple[str, dict[str, Any]]]:
    if value is None:
        return []
    out = []
    for item in value:
        if _BLOCK in item:
            raise HclError(f'input.hcl: Missing name for {name}; All {name} blocks must have '
                           "1 labels (name).")
        for label, body in item.items():
            if _BLOCK not in body:
                raise HclError(f'input.hcl: Extraneous label for {name}; Only 1 labels (name) '
                               "are expected for {name} blocks.")
            out.append((_key(label), body))
    return out


def _literal(value: Any) -> Any:
    """python-hcl2's source-form values -> Python values (strings unquoted, escapes resolved)."""
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, dict):
        return {_key(k): _literal(v) for k, v in value.items() if k != _BLOCK}
    if not isinstance(value, str):
        return value
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        inner = value[1:-1]
        heredoc = _HEREDOC.match(inner)
        if heredoc and "\n" in inner:
            return _heredoc(heredoc.group(1) == "-", heredoc.group(2), heredoc.group(3))
        return _unescape(inner)
    if value.startswith("${") and value.endswith("}"):
        raise HclError(f"input.hcl: Unsupported expression; The expression {value[2:-1]!r} "
                       "needs HCL variables or functions, which this parser does not evaluate.")
    raise HclError(f'input.hcl: Unknown variable; There is no variable named "{value}".')


def _heredoc(indented: bool, marker: str, rest: str) -> str:
    lines = rest.split("\n")
    # The closing marker is the last line; it may be indented when `<<-` is used.
    while lines and lines[-1].strip() != marker:
        lines.pop()
    content = "\n".join(lines[:-1]) + "\n" if len(lines) > 1 else ""
    if indented:
        content = textwrap.dedent(content)
    return content.replace("$${", "${").replace("%%{", "%{")


def _unescape(text: str) -> str:
    out = []
    i = 0
    simple = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in simple:
                out.append(simple[nxt])
                i += 2
                continue
            if nxt in "uU":
                width = 4 if nxt == "u" else 8
                digits = text[i + 2:i + 2 + width]
                if len(digits) == width and all(c in "0123456789abcdefABCDEF" for c in digits):
                    out.append(chr(int(digits, 16)))
                    i += 2 + width
                    continue
        if text.startswith("$${", i) or text.startswith("%%{", i):
            out.append(text[i + 1:i + 3])
            i += 3
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _key(key: Any) -> str:
    text = str(key)
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return _unescape(text[1:-1])
    return text


def _as_str(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value
    raise HclError(f"input.hcl: Unsuitable value type; Unsuitable value for {name}: string "
                   "required")
