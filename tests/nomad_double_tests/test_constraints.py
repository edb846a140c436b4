"""Constraint operands, unit-aware device attributes, versions, and the ?filter= language."""

from __future__ import annotations

import pytest

from tests.support.nomad_double.constraints import (
    Attribute,
    check_device_constraint,
    check_node_constraint,
    version_matches,
)
from tests.support.nomad_double.errors import ApiError
from tests.support.nomad_double.filters import matches
from tests.support.nomad_double.fleet import mixed_fleet

NODE = next(n for n in mixed_fleet() if n["Name"] == "gpu-a100-01")


@pytest.mark.parametrize(("left", "operand", "right", "expected"), [
    ("${meta.heteroflow.gpu.vendor}", "=", "nvidia", True),
    ("${meta.heteroflow.gpu.vendor}", "!=", "nvidia", False),
    ("${meta.missing}", "!=", "x", True),
    ("${meta.missing}", "=", "", False),
    ("${meta.heteroflow.gpu.count}", ">=", "8", True),
    ("${meta.heteroflow.gpu.count}", "<", "10", True),
    ("${meta.heteroflow.gpu.cc}", ">", "7.5", True),
    ("${attr.kernel.name}", "<", "mac", True),
    ("${meta.heteroflow.gpu.cc}", "version", ">= 8.0, < 9.0", True),
    ("${meta.heteroflow.gpu.cc}", "version", "~> 9.0", False),
    ("${attr.nomad.version}", "semver", ">= 1.6.0", True),
    ("${attr.consul.version}", "semver", "< 1.8.7", False),
    ("${attr.driver.docker.runtimes}", "regexp", "nvid+ia", True),
    ("${meta.heteroflow.engines}", "set_contains", "vllm, sglang", True),
    ("${meta.heteroflow.engines}", "set_contains_all", "vllm,tgi", False),
    ("${meta.heteroflow.engines}", "set_contains_any", "tgi,llamacpp", True),
    ("${meta.heteroflow.gpu.cc}", "is_set", "", True),
    ("${meta.heteroflow.gpu.cc}", "is_not_set", "", False),
    ("${node.datacenter}", "=", "dc1", True),
    ("${node.pool}", "=", "default", True),
    ("${node.class}", "=", "", True),
    ("${node.unique.name}", "regexp", "^gpu-a100", True),
])
def test_node_constraints(left: str, operand: str, right: str, expected: bool) -> None:
    constraint = {"LTarget": left, "Operand": operand, "RTarget": right}
    assert check_node_constraint(constraint, NODE) is expected


@pytest.mark.parametrize(("text", "operand", "expected"), [
    ("40 GiB", ">=", True),
    ("80 GiB", ">=", True),
    ("81 GiB", ">=", False),
    ("85899345920", ">=", False),
    ("80000 MB", ">", True),
    ("80 GiB", "=", True),
    ("2 GHz", "<", False),
])
def test_unit_aware_device_memory(text: str, operand: str, expected: bool) -> None:
    memory = Attribute(int_val=81920, unit="MiB")
    assert check_device_constraint(operand, memory, Attribute.parse(text)) is expected


def test_attribute_parsing() -> None:
    assert Attribute.parse("40 GiB") == Attribute(int_val=40, unit="GiB")
    assert Attribute.parse("1.5GHz") == Attribute(float_val=1.5, unit="GHz")
    assert Attribute.parse("true") == Attribute(bool_val=True)
    assert Attribute.parse("H100") == Attribute(str_val="H100")
    assert Attribute(int_val=1, unit="W").compare(Attribute(int_val=1, unit="MiB")) is None


def test_versions() -> None:
    assert version_matches("1.6.3-dev", ">= 1.6.3-dev", semver=True)
    assert not version_matches("1.7.0-beta1", ">= 1.6.0", semver=False)
    assert version_matches("1.7.0-beta1", ">= 1.6.0", semver=True)
    assert version_matches("8.0", "= 8", semver=False)
    assert version_matches("1.4.9", "~> 1.4", semver=False)
    assert not version_matches("2.0.0", "~> 1.4", semver=False)


ALLOC = {"JobID": "llm", "ClientStatus": "running", "DesiredStatus": "run",
         "Meta": {"gpu.cc": "8.0"}, "Tags": ["a", "b"], "Count": 3, "Ready": True, "Empty": ""}


@pytest.mark.parametrize(("expression", "expected"), [
    ('JobID == "llm"', True),
    ('JobID == "llm" and ClientStatus == "running"', True),
    ('JobID == "llm" and ClientStatus == "pending"', False),
    ('ClientStatus == "pending" or DesiredStatus == "run"', True),
    ('not (JobID == "other")', True),
    ('Meta["gpu.cc"] matches "^8"', True),
    ('"a" in Tags', True),
    ('"z" not in Tags', True),
    ("Count == 3 and Ready == true", True),
    ("Empty is empty", True),
    ("Meta is not empty", True),
    ('JobID != "llm"', False),
])
def test_filter_expressions(expression: str, expected: bool) -> None:
    assert matches(expression, ALLOC) is expected


def test_filter_syntax_error() -> None:
    with pytest.raises(ApiError) as caught:
        matches('JobID == "x" and', ALLOC)
    assert caught.value.status == 400
