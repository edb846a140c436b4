"""Safe interpolation of values into HCL2 text.

Every value reaching a template goes through these filters, so no input can close a string,
open a block, or smuggle a Nomad/HCL template sequence (``${...}``, ``%{...}``) into the job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def hcl_string(value: object) -> str:
    """A quoted HCL string literal whose content is exactly ``value``, nothing interpolated."""
    text = str(value)
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    escaped = "".join(out).replace("${", "$${").replace("%{", "%%{")
    return f'"{escaped}"'


_TARGET = re.compile(r"^\$\{(meta|attr|node|device)\.[A-Za-z0-9_.-]+\}$")


def hcl_target(value: str) -> str:
    """A constraint/affinity target such as ``${meta.heteroflow.gpu.cc}``, kept as Nomad's
    interpolation (it is checked against a strict pattern first)."""
    if not _TARGET.match(value):
        raise ValueError(f"not a Nomad constraint target: {value!r}")
    return f'"{value}"'


def hcl_comment(value: object) -> str:
    """Text for a ``#`` comment: one line, whatever it contains."""
    return " ".join(str(value).split())


def hcl_list(values: Iterable[object]) -> str:
    return "[" + ", ".join(hcl_string(v) for v in values) + "]"


def hcl_heredoc_safe(text: str) -> str:
    """Content for a ``<<-EOT`` heredoc of a template block: no template sequences, no EOT."""
    safe = text.replace("${", "$${").replace("%{", "%%{").replace("{{", "{{ \"{{\" }}")
    lines = safe.splitlines()
    if any(line.strip() == "EOT" for line in lines):
        raise ValueError("file content may not contain a line reading EOT")
    return safe
