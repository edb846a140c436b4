"""A subset of go-bexpr, the `?filter=` language of Nomad list endpoints.

Supported: `Sel == "v"`, `!=`, `matches`, `not matches`, `contains`, `not contains`,
`"v" in Sel`, `"v" not in Sel`, `Sel is empty`, `Sel is not empty`, `and`, `or`, `not` and
parentheses. Selectors are dotted paths (`Meta.gpu_cc`) or indexed (`Meta["a.b"]`).
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ApiError

_SEP = "\x00"
_TOKEN = re.compile(r'\s*(?:(\()|(\))|("(?:[^"\\]|\\.)*"|`[^`]*`)|(==|!=)|'
                    r'(\[\s*"(?:[^"\\]|\\.)*"\s*\])|([A-Za-z0-9_.\-/]+))')


def matches(expression: str, obj: Any) -> bool:
    """Evaluate `expression` against `obj`; a malformed expression is Nomad's 400."""
    tokens = _tokenize(expression)
    parser = _Parser(tokens, obj)
    result = parser.expr()
    if parser.pos != len(tokens):
        raise ApiError(400, f"failed to read filter expression: unexpected {tokens[parser.pos]}")
    return result


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ApiError(400, f"failed to read filter expression: {text!r}")
        token = next(g for g in match.groups() if g is not None)
        if token.startswith("["):
            # Indexed keys may contain dots: keep path parts apart with a NUL separator.
            tokens[-1] = tokens[-1].replace(".", _SEP) + _SEP + _unquote(token[1:-1].strip())
        else:
            tokens.append(token)
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    def __init__(self, tokens: list[str], obj: Any) -> None:
        self.tokens = tokens
        self.obj = obj
        self.pos = 0

    def peek(self, offset: int = 0) -> str | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ApiError(400, "failed to read filter expression: unexpected end")
        self.pos += 1
        return token

    def expr(self) -> bool:
        value = self.conj()
        while self.peek() == "or":
            self.take()
            value = self.conj() or value
        return value

    def conj(self) -> bool:
        value = self.unary()
        while self.peek() == "and":
            self.take()
            value = self.unary() and value
        return value

    def unary(self) -> bool:
        if self.peek() == "not":
            self.take()
            return not self.unary()
        if self.peek() == "(":
            self.take()
            value = self.expr()
            if self.take() != ")":
                raise ApiError(400, "failed to read filter expression: missing )")
            return value
        return self.match()

    def match(self) -> bool:
        first = self.take()
        following, after = self.peek(), self.peek(1)
        if first.startswith(('"', "`")) or following == "in" or (
                following == "not" and after == "in"):
            negate = False
            if self.peek() == "not":
                self.take()
                negate = True
            if self.take() != "in":
                raise ApiError(400, "failed to read filter expression: expected in")
            found = _contains(_select(self.obj, self.take()), _unquote(first))
            return found != negate
        field = _select(self.obj, first)
        op = self.take()
        if op == "is":
            negate = self.peek() == "not"
            if negate:
                self.take()
            if self.take() != "empty":
                raise ApiError(400, "failed to read filter expression: expected empty")
            return (not field) != negate
        negate = False
        if op == "not":
            negate, op = True, self.take()
        literal = _unquote(self.take())
        if op == "==":
            return _equal(field, literal)
        if op == "!=":
            return not _equal(field, literal)
        if op == "matches":
            return (isinstance(field, str) and re.search(literal, field) is not None) != negate
        if op == "contains":
            return _contains(field, literal) != negate
        raise ApiError(400, f"failed to read filter expression: unknown operator {op}")


def _select(obj: Any, selector: str) -> Any:
    current = obj
    for part in selector.split(_SEP if _SEP in selector else "."):
        if isinstance(current, dict):
            current = current.get(part)
        else:
            return None
    return current


def _equal(field: Any, literal: str) -> bool:
    if isinstance(field, bool):
        return str(field).lower() == literal.lower()
    if isinstance(field, int | float):
        try:
            return float(field) == float(literal)
        except ValueError:
            return False
    return isinstance(field, str) and field == literal


def _contains(field: Any, literal: str) -> bool:
    if isinstance(field, str):
        return literal in field
    if isinstance(field, list | dict):
        return literal in field
    return False


def _unquote(token: str) -> str:
    if token.startswith('"') and token.endswith('"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    if token.startswith("`") and token.endswith("`"):
        return token[1:-1]
    return token
