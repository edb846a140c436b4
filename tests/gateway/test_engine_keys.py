"""The per-task engine key: the bridge (which hands it to the engine) and the gateway (which
sends it) derive the same one from the shared secret key, a different one per task."""

from __future__ import annotations

from pydantic import SecretStr

from bridge.crypto import SecretBox
from gateway.settings import GatewaySettings
from gateway.upstream_keys import UpstreamKeyBox
from tests.support.pg import TEST_SECRET_KEY


def test_bridge_and_gateway_derive_the_same_engine_key(tmp_path) -> None:
    bridge = SecretBox(TEST_SECRET_KEY)
    gateway = UpstreamKeyBox.from_settings(GatewaySettings(
        home=tmp_path, secret_key=SecretStr(TEST_SECRET_KEY)))
    key = bridge.engine_key("tg-1-0")
    assert key.startswith("hfe-") and len(key) > 40
    assert gateway.engine_auth("tg-1-0") == f"Authorization: Bearer {key}\r\n".encode()
    assert bridge.engine_key("tg-1-1") != key
    assert UpstreamKeyBox(None, "no key").engine_auth("tg-1-0") == b""
    assert gateway.engine_auth(None) == b""
