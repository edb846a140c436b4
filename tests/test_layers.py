"""Import rules: layers point one way, and the gateway and agent never import the bridge.

    bridge.api -> bridge.services -> adapters (storage, placement, nomad, agents) -> domain

The app and its runtime wire them together; nothing imports bridge.api but the app;
services reach placement through its port only; SQL is written in bridge.storage alone;
bridge packages import each other without cycles; only the CLI, which runs the gateway
and the agent beside the bridge, imports them.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"bridge": ROOT / "bridge", "gateway": ROOT / "gateway",
            "agent_plugin": ROOT / "agent-plugin" / "agent_plugin"}
WIRING = ("bridge.api", "bridge.cli", "bridge.app", "bridge.runtime")
ADAPTERS_ABOVE = (*WIRING, "bridge.services")

# module prefix -> prefixes it must not import
FORBIDDEN = {
    "bridge.domain": (*ADAPTERS_ABOVE, "bridge.storage", "bridge.placement", "bridge.nomad",
                      "bridge.agents", "sanic", "psycopg"),
    "bridge.storage": (*ADAPTERS_ABOVE, "bridge.placement", "bridge.nomad", "bridge.agents",
                       "sanic"),
    "bridge.nomad": (*ADAPTERS_ABOVE, "bridge.storage", "bridge.placement", "bridge.agents",
                     "sanic", "psycopg"),
    "bridge.agents": (*ADAPTERS_ABOVE, "bridge.storage", "bridge.placement", "bridge.nomad",
                      "sanic", "psycopg"),
    "bridge.placement": (*ADAPTERS_ABOVE, "sanic"),
    # The services use placement through its port, never an implementation.
    "bridge.services": (*WIRING, "bridge.placement.nomad", "bridge.placement.local",
                        "bridge.nomad", "sanic", "psycopg"),
    "bridge.api": ("bridge.storage", "bridge.placement.nomad", "bridge.placement.local",
                   "bridge.nomad", "psycopg"),
    "gateway": ("bridge",),
    "agent_plugin": ("bridge",),
}

# (bridge module, what it imports of the gateway or agent) allowed outside bridge.cli: none;
# what the three share lives in heteroflow_contracts.
OUTSIDE_CLI_ALLOWED: set[tuple[str, str]] = set()

_SQL = re.compile(r"^\s*(SELECT\s+\S+.*\sFROM\s|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s"
                  r"|DELETE\s+FROM\s|LOCK\s+TABLE\s|(CREATE|ALTER|DROP)\s+(TABLE|INDEX)\s)")


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for pkg, folder in PACKAGES.items():
        for file in folder.rglob("*.py"):
            rel = file.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out.append((".".join([pkg, *parts]), file))
    return out


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_layers_point_one_way() -> None:
    problems = []
    for name, file in modules():
        for prefix, banned in FORBIDDEN.items():
            if under(name, prefix):
                for imported in imports_of(file):
                    if any(under(imported, b) for b in banned):
                        problems.append(f"{name} imports {imported}")
    assert problems == []


def test_nothing_imports_the_api_layer_but_the_app() -> None:
    offenders = [
        name for name, file in modules()
        if not name.startswith(("bridge.api", "bridge.app"))
        and any(i.startswith("bridge.api") for i in imports_of(file))
    ]
    assert offenders == []


CONTRACTS = ROOT / "heteroflow_contracts"


def test_the_contracts_package_is_a_leaf() -> None:
    """What bridge, gateway and agent share imports none of them, nor anything installed:
    each of the three can take it without taking another, or another's dependencies."""
    allowed = {*sys.stdlib_module_names, "heteroflow_contracts"}
    problems = [f"heteroflow_contracts/{file.relative_to(CONTRACTS)} imports {imported}"
                for file in CONTRACTS.rglob("*.py") for imported in imports_of(file)
                if imported.split(".")[0] not in allowed]
    assert list(CONTRACTS.rglob("*.py")) and problems == []


def test_only_the_cli_imports_the_gateway_or_the_agent() -> None:
    found = {(name, imported) for name, file in modules()
             if under(name, "bridge") and not under(name, "bridge.cli")
             for imported in imports_of(file)
             if under(imported, "gateway") or under(imported, "agent_plugin")}
    assert found - OUTSIDE_CLI_ALLOWED == set()


def test_sql_is_written_in_storage_only() -> None:
    problems = []
    for name, file in modules():
        if not under(name, "bridge") or under(name, "bridge.storage"):
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("execute", "executemany", "copy")):
                problems.append(f"{name}:{node.lineno} calls .{node.func.attr}()")
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and _SQL.match(node.value)):
                problems.append(f"{name}:{node.lineno} holds SQL {node.value[:40]!r}")
    assert problems == []


def test_bridge_packages_import_each_other_without_cycles() -> None:
    """Packages one level below bridge (bridge.placement.nomad two): a cycle between them
    means two layers that cannot be understood, or changed, one without the other."""

    def package(name: str) -> str:
        parts = name.split(".")
        depth = 3 if parts[:2] == ["bridge", "placement"] else 2
        return ".".join(parts[:depth])

    graph: dict[str, set[str]] = {}
    for name, file in modules():
        if under(name, "bridge"):
            graph.setdefault(package(name), set()).update(
                package(i) for i in imports_of(file)
                if under(i, "bridge") and package(i) != package(name))
    cycles = []
    for start in sorted(graph):
        seen, stack = set(), [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert cycles == []
