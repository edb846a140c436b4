"""What the bridge, the gateway and the agent take from ``heteroflow_contracts``, checked
where each of them uses it: the same variable parsed the same way by every process, a
secret field masked by every process's log formatter, one vendor table, one set of
algorithm names, and one key digest (the one stored in existing databases)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from agent_plugin.logs import configure_logging as agent_logging
from agent_plugin.settings import AgentSettings
from bridge.domain.models import Algorithm, GpuVendor
from bridge.logs import configure_logging as bridge_logging
from bridge.settings import BridgeSettings
from gateway.logs import configure_logging as gateway_logging
from gateway.routing.algorithms import BALANCERS
from heteroflow_contracts.algorithms import ALGORITHMS, DEFAULT_ALGORITHM
from heteroflow_contracts.credentials import hash_secret, secret_matches, secret_prefix
from heteroflow_contracts.masking import MASK
from heteroflow_contracts.settings import DEFAULT_MODEL_ROOTS
from heteroflow_contracts.vendors import VENDORS, VISIBILITY


class TestModelRoots:
    @pytest.mark.parametrize("value", ["/models, /srv/models", " /models ,/srv/models,",
                                       "/models,/srv/models"])
    def test_one_variable_means_the_same_folders_to_bridge_and_agent(
            self, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
        monkeypatch.setenv("HETEROFLOW_MODEL_ROOTS", value)
        expected = (Path("/models"), Path("/srv/models"))
        assert BridgeSettings().model_roots == expected
        assert AgentSettings().model_roots == expected

    @pytest.mark.parametrize("value", ["models", "/models, relative", "/"])
    def test_what_one_refuses_the_other_refuses(
            self, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
        monkeypatch.setenv("HETEROFLOW_MODEL_ROOTS", value)
        with pytest.raises(ValueError, match="absolute folder"):
            BridgeSettings()
        with pytest.raises(ValueError, match="absolute folder"):
            AgentSettings()

    def test_the_same_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("HETEROFLOW_MODEL_ROOTS", raising=False)
        assert BridgeSettings().model_roots == AgentSettings().model_roots == DEFAULT_MODEL_ROOTS


SECRETS = {"token": "t0k", "api_key": "sk-live", "key_hash": "ab12", "agent_secret": "s3",
           "authorization": "Bearer x", "db_password": "pw", "node_token": "nt"}
PLAIN = {"token_id": "tok-1", "task_id": "task-1", "key_prefix": "sk-1234", "node": "gpu-01"}


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restored_logging")
@pytest.mark.parametrize("configure", [bridge_logging, gateway_logging, agent_logging],
                         ids=["bridge", "gateway", "agent"])
def test_every_process_masks_the_same_fields(configure: Callable[..., None]) -> None:
    configure("INFO", "json")
    formatter = logging.getLogger().handlers[0].formatter
    assert formatter is not None
    record = logging.makeLogRecord({"name": "heteroflow.test", "msg": "called",
                                    "levelno": logging.INFO, "levelname": "INFO",
                                    **SECRETS, **PLAIN})
    line: dict[str, Any] = json.loads(formatter.format(record))
    assert {k: line[k] for k in SECRETS} == dict.fromkeys(SECRETS, MASK)
    assert {k: line[k] for k in PLAIN} == PLAIN


def test_one_vendor_table() -> None:
    assert set(VENDORS) == set(VISIBILITY) == {v.value for v in GpuVendor}


def test_one_set_of_algorithm_names() -> None:
    assert {a.value for a in Algorithm} == set(ALGORITHMS) == set(BALANCERS)
    assert DEFAULT_ALGORITHM in BALANCERS


def test_the_key_digest_is_the_stored_one() -> None:
    # Digests already in api_keys.key_hash and user tokens were written as SHA-256 hex of
    # the UTF-8 key; another digest would lock every existing key out.
    key = "sk-0123456789abcdef"
    assert hash_secret(key) == hashlib.sha256(key.encode("utf-8")).hexdigest()
    assert secret_matches(key, hash_secret(key)) and not secret_matches(key + "x",
                                                                        hash_secret(key))
    assert secret_prefix(key) == "sk-01234567"
