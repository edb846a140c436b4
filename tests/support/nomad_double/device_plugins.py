"""Device groups from a real Nomad device plugin, turned into a node's
``NodeResources.Devices`` as the Nomad client's device manager does
(client/devicemanager/utils.go: convertDeviceGroup; attributes keep Nomad's
``{"Float", "Int", "String", "Bool", "Unit"}`` JSON shape).

A node of the double then offers exactly the devices the plugin fingerprinted, with their
IDs and health, so placement on it is Nomad's accounting of the plugin's devices. Groups
are checked as the client's device manager checks them (plugins/device/device.go
``DeviceGroup.Validate``, plugins/shared/structs/attribute.go ``Attribute.Validate``): a
group Nomad would refuse is an error here too.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.support.nomad_double.constraints import UNITS
from tests.support.nomad_plugin_client import PluginClient

Json = dict[str, Any]


def device_groups(fingerprint: Any) -> list[Json]:
    """A FingerprintResponse's groups as NodeDeviceResource JSON."""
    return [{"Vendor": g.vendor, "Type": g.device_type, "Name": g.device_name,
             "Instances": [_instance(d) for d in g.devices],
             "Attributes": {k: _attribute(v) for k, v in sorted(g.attributes.items())}}
            for g in fingerprint.device_group]


class InvalidDeviceGroups(ValueError):
    """The plugin sent groups Nomad's device manager would reject."""


def validate(groups: list[Json]) -> list[str]:
    """Every problem Nomad's validation finds, as its messages say them."""
    problems = []
    for n, group in enumerate(groups):
        for key in ("Vendor", "Type", "Name"):
            if not group[key]:
                problems.append(f"device group {n}: device {key.lower()} must be specified")
        for i, instance in enumerate(group["Instances"]):
            if not instance["ID"]:
                problems.append(f"device group {n}: device {i}: device ID must be specified")
        for name, attribute in group["Attributes"].items():
            set_values = [k for k in ("Float", "Int", "String", "Bool")
                          if attribute[k] is not None]
            unit = attribute["Unit"]
            if unit and unit not in UNITS:
                problems.append(f"device attribute {name!r} invalid: unrecognized unit {unit!r}")
            if unit and set(set_values) & {"String", "Bool"}:
                problems.append(f"device attribute {name!r} invalid: unit can not be "
                                "specified on a boolean or string attribute")
            if len(set_values) != 1:
                problems.append(f"device attribute {name!r} invalid: exactly one value")
    return problems


def fingerprint_devices(plugin: PluginClient) -> list[Json]:
    """The first fingerprint the plugin streams, as the client reports it on registering."""
    stream = plugin.fingerprint()
    try:
        groups = device_groups(next(iter(stream)))
    finally:
        stream.cancel()  # type: ignore[attr-defined]
    problems = validate(groups)
    if problems:
        raise InvalidDeviceGroups("; ".join(problems))
    return groups


def with_plugin_devices(node: Json, groups: list[Json]) -> Json:
    """A copy of ``node`` whose devices of the plugin's vendors are the plugin's groups
    (the plugin replaces what another plugin or a fixture said about those vendors)."""
    vendors = {g["Vendor"] for g in groups}
    updated = copy.deepcopy(node)
    resources = updated.setdefault("NodeResources", {})
    kept = [d for d in resources.get("Devices") or [] if d["Vendor"] not in vendors]
    resources["Devices"] = (kept + copy.deepcopy(groups)) or None
    return updated


def _instance(device: Any) -> Json:
    locality = ({"PciBusID": device.hw_locality.pci_bus_id}
                if device.HasField("hw_locality") else None)
    return {"ID": device.ID, "Healthy": device.healthy,
            "HealthDescription": device.health_description, "Locality": locality}


def _attribute(value: Any) -> Json:
    kind = value.WhichOneof("value")
    return {"Float": value.float_val if kind == "float_val" else None,
            "Int": value.int_val if kind == "int_val" else None,
            "String": value.string_val if kind == "string_val" else None,
            "Bool": value.bool_val if kind == "bool_val" else None,
            "Unit": value.unit}
