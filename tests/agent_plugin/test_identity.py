"""The agent's identity on real files: a node id that survives restarts, a private secret."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

from agent_plugin.identity import NODE_ID, load_identity
from agent_plugin.settings import AgentSettings


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestIdentity:
    def test_made_once_and_kept(self, agent_settings: Callable[..., AgentSettings]) -> None:
        settings = agent_settings()
        first = load_identity(settings)
        assert NODE_ID.match(first.node_id) and first.node_id.startswith(first.name[:20])
        assert len(first.secret) >= 32 and mode(settings.secret_path) == 0o600
        again = load_identity(settings)
        assert (again.node_id, again.secret) == (first.node_id, first.secret)
        assert first.secret not in repr(first)

    def test_another_home_is_another_node(self, agent_settings: Callable[..., AgentSettings],
                                          tmp_path: Path) -> None:
        one = load_identity(agent_settings())
        other = load_identity(agent_settings(home=tmp_path / "other"))
        assert one.node_id != other.node_id and one.secret != other.secret

    def test_overrides(self, agent_settings: Callable[..., AgentSettings]) -> None:
        identity = load_identity(agent_settings(node_id="gpu-01.rack-3", node_name="gpu-01"))
        assert (identity.node_id, identity.name) == ("gpu-01.rack-3", "gpu-01")

    def test_repairs_what_it_cannot_trust(self,
                                          agent_settings: Callable[..., AgentSettings]) -> None:
        settings = agent_settings()
        first = load_identity(settings)
        settings.secret_path.chmod(0o644)
        assert load_identity(settings).secret == first.secret
        assert mode(settings.secret_path) == 0o600  # narrowed, not replaced
        settings.secret_path.write_text("short\n")
        settings.node_id_path.write_text("not a valid id!\n")
        repaired = load_identity(settings)
        assert len(repaired.secret) >= 32 and repaired.secret != first.secret
        assert NODE_ID.match(repaired.node_id) and repaired.node_id != first.node_id
        assert mode(settings.secret_path) == 0o600

    def test_facts(self, agent_settings: Callable[..., AgentSettings]) -> None:
        facts = load_identity(agent_settings()).facts_json()
        assert set(facts) == {"hostname", "os", "kernel", "cpu_count", "memory_mb", "python",
                              "agent_version"}
        assert facts["cpu_count"] >= 1 and facts["memory_mb"] > 0
        assert facts["python"].startswith("3.11")
