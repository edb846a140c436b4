"""Import rules: layers point one way, and the gateway and agent never import the bridge.

    bridge.api -> bridge.services -> bridge.storage -> bridge.domain
Nothing imports bridge.api except the app; bridge.domain imports nothing of the project.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"bridge": ROOT / "bridge", "gateway": ROOT / "gateway",
            "agent_plugin": ROOT / "agent-plugin" / "agent_plugin"}

# module prefix -> prefixes it must not import
FORBIDDEN = {
    "bridge.domain": ("bridge.api", "bridge.services", "bridge.storage", "bridge.cli",
                      "bridge.app", "sanic", "psycopg"),
    "bridge.storage": ("bridge.api", "bridge.services", "bridge.cli", "bridge.app", "sanic"),
    "bridge.services": ("bridge.api", "bridge.cli", "bridge.app", "sanic", "psycopg"),
    "gateway": ("bridge",),
    "agent_plugin": ("bridge",),
}


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


def test_layers_point_one_way() -> None:
    problems = []
    for name, file in modules():
        for prefix, banned in FORBIDDEN.items():
            if name == prefix or name.startswith(prefix + "."):
                for imported in imports_of(file):
                    if any(imported == b or imported.startswith(b + ".") for b in banned):
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


def test_the_bridge_shares_the_agents_tables_through_the_contracts_package() -> None:
    # Only the CLI runs an agent in the bridge's process (the one-machine default).
    offenders = [
        f"{name} imports {imported}" for name, file in modules()
        if name.startswith("bridge.") and not name.startswith("bridge.cli")
        for imported in imports_of(file)
        if imported == "agent_plugin" or imported.startswith("agent_plugin.")
    ]
    assert offenders == []
