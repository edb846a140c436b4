"""The generated modules carry Nomad's and go-plugin's wire contract: full service and
method names (the gRPC paths Nomad calls) and every field's name and number, checked
against a table written from Nomad's plugins/*/proto files and go-plugin's
internal/plugin/*.proto, independently of our .proto text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent_plugin.nomad_device import protos as protos_module
from agent_plugin.nomad_device.protos import protos

SERVICES = {
    "hashicorp.nomad.plugins.base.proto.BasePlugin": ["PluginInfo", "ConfigSchema",
                                                      "SetConfig"],
    "hashicorp.nomad.plugins.device.DevicePlugin": ["Fingerprint", "Reserve", "Stats"],
    "plugin.GRPCController": ["Shutdown"],
    "plugin.GRPCStdio": ["StreamStdio"],
    "plugin.GRPCBroker": ["StartStream"],
}
STREAMING = {"Fingerprint": (False, True), "Stats": (False, True),
             "StreamStdio": (False, True), "StartStream": (True, True)}

FIELDS = {
    "hashicorp.nomad.plugins.base.proto.PluginInfoResponse": {
        "type": 1, "plugin_api_versions": 2, "plugin_version": 3, "name": 4},
    "hashicorp.nomad.plugins.base.proto.ConfigSchemaResponse": {"spec": 1},
    "hashicorp.nomad.plugins.base.proto.SetConfigRequest": {
        "msgpack_config": 1, "nomad_config": 2, "plugin_api_version": 3},
    "hashicorp.nomad.plugins.base.proto.NomadConfig": {"driver": 1},
    "hashicorp.nomad.plugins.base.proto.NomadDriverConfig": {
        "ClientMaxPort": 1, "ClientMinPort": 2, "Topology": 3},
    "hashicorp.nomad.plugins.base.proto.ClientTopology": {
        "node_ids": 1, "distances": 2, "cores": 3, "override_total_compute": 4,
        "override_withold_compute": 5},
    "hashicorp.nomad.plugins.base.proto.ClientTopologyCore": {
        "socket_id": 1, "node_id": 2, "core_id": 3, "core_grade": 4, "disable": 5,
        "base_speed": 6, "max_speed": 7, "guess_speed": 8},
    "hashicorp.nomad.plugins.device.FingerprintResponse": {"device_group": 1},
    "hashicorp.nomad.plugins.device.DeviceGroup": {
        "vendor": 1, "device_type": 2, "device_name": 3, "devices": 4, "attributes": 5},
    "hashicorp.nomad.plugins.device.DetectedDevice": {
        "ID": 1, "healthy": 2, "health_description": 3, "hw_locality": 4},
    "hashicorp.nomad.plugins.device.DeviceLocality": {"pci_bus_id": 1},
    "hashicorp.nomad.plugins.device.ReserveRequest": {"device_ids": 1},
    "hashicorp.nomad.plugins.device.ReserveResponse": {"container_res": 1},
    "hashicorp.nomad.plugins.device.ContainerReservation": {
        "envs": 1, "mounts": 2, "devices": 3},
    "hashicorp.nomad.plugins.device.Mount": {"task_path": 1, "host_path": 2, "read_only": 3},
    "hashicorp.nomad.plugins.device.DeviceSpec": {
        "task_path": 1, "host_path": 2, "permissions": 3},
    "hashicorp.nomad.plugins.device.StatsRequest": {"collection_interval": 1},
    "hashicorp.nomad.plugins.device.StatsResponse": {"groups": 1},
    "hashicorp.nomad.plugins.device.DeviceGroupStats": {
        "vendor": 1, "type": 2, "name": 3, "instance_stats": 4},
    "hashicorp.nomad.plugins.device.DeviceStats": {"summary": 1, "stats": 2, "timestamp": 3},
    "hashicorp.nomad.plugins.shared.structs.Attribute": {
        "float_val": 1, "int_val": 2, "string_val": 3, "bool_val": 4, "unit": 5},
    "hashicorp.nomad.plugins.shared.structs.StatObject": {"nested": 1, "attributes": 2},
    "hashicorp.nomad.plugins.shared.structs.StatValue": {
        "float_numerator_val": 1, "float_denominator_val": 2, "int_numerator_val": 3,
        "int_denominator_val": 4, "string_val": 5, "bool_val": 6, "unit": 7, "desc": 8},
    "hashicorp.nomad.plugins.shared.hclspec.Spec": {
        "object": 1, "array": 2, "Attr": 3, "block_value": 4, "block_attrs": 5,
        "block_list": 6, "block_set": 7, "block_map": 8, "default": 9, "literal": 10},
    "hashicorp.nomad.plugins.shared.hclspec.Attr": {"name": 1, "type": 2, "required": 3},
    "hashicorp.nomad.plugins.shared.hclspec.Block": {"name": 1, "required": 2, "nested": 3},
    "hashicorp.nomad.plugins.shared.hclspec.BlockList": {
        "name": 1, "min_items": 2, "max_items": 3, "nested": 4},
    "hashicorp.nomad.plugins.shared.hclspec.BlockMap": {"name": 1, "labels": 2, "nested": 3},
    "hashicorp.nomad.plugins.shared.hclspec.Default": {"primary": 1, "default": 2},
    "hashicorp.nomad.plugins.shared.hclspec.Literal": {"value": 1},
    "hashicorp.nomad.plugins.shared.hclspec.Object": {"attributes": 1},
    "hashicorp.nomad.plugins.shared.hclspec.Array": {"values": 1},
    "plugin.StdioData": {"channel": 1, "data": 2},
    "plugin.ConnInfo": {"service_id": 1, "network": 2, "address": 3, "knock": 4},
    "plugin.ConnInfo.Knock": {"knock": 1, "ack": 2, "error": 3},
}
ENUMS = {
    "hashicorp.nomad.plugins.base.proto.PluginType": {"UNKNOWN": 0, "DRIVER": 2, "DEVICE": 3},
    "plugin.StdioData.Channel": {"INVALID": 0, "STDOUT": 1, "STDERR": 2},
}


def pool() -> Any:
    return protos().device.DESCRIPTOR.pool


@pytest.mark.parametrize("service", list(SERVICES))
def test_services_and_methods(service: str) -> None:
    protos()  # every module registered in the pool
    found = pool().FindServiceByName(service)
    assert [m.name for m in found.methods] == SERVICES[service]
    for method in found.methods:
        expected = STREAMING.get(method.name, (False, False))
        assert (method.client_streaming, method.server_streaming) == expected


@pytest.mark.parametrize("message", list(FIELDS))
def test_field_names_and_numbers(message: str) -> None:
    protos()
    found = pool().FindMessageTypeByName(message)
    assert {f.name: f.number for f in found.fields} == FIELDS[message]


@pytest.mark.parametrize("enum", list(ENUMS))
def test_enum_values(enum: str) -> None:
    protos()
    found = pool().FindEnumTypeByName(enum)
    assert {v.name: v.number for v in found.values} == ENUMS[enum]


def test_generation_is_cached_by_the_sources(tmp_path: Path) -> None:
    folder = protos_module._generate(tmp_path)
    assert folder.name == protos_module.cache_key()
    generated = folder / "heteroflow_nomadpb" / "plugins" / "device" / "proto"
    assert (generated / "device_pb2.py").exists() and (generated / "device_pb2_grpc.py").exists()
    stamp = (generated / "device_pb2.py").stat().st_mtime_ns
    assert protos_module._generate(tmp_path) == folder  # a warm cache is not regenerated
    assert (generated / "device_pb2.py").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no staging left over
