"""Our values as Nomad's protobuf messages: the config schema, fingerprints, stats and
reservations. The message classes come from the generated modules (see ``protos``)."""

from __future__ import annotations

from typing import Any

from google.protobuf import timestamp_pb2, wrappers_pb2

from agent_plugin.models import GpuDevice
from agent_plugin.nomad_device.config import KEYS
from agent_plugin.nomad_device.inventory import Attribute, Group, device_id
from agent_plugin.nomad_device.protos import Protos
from agent_plugin.nomad_device.reservation import Reservation


def config_schema(pb: Protos) -> Any:
    """An hclspec Object whose every key is Default(Attr, Literal), as Nomad's own
    plugins declare optional keys."""
    spec = pb.hclspec
    attributes = {
        name: spec.Spec(default=spec.Default(
            primary=spec.Spec(Attr=spec.Attr(name=name, type=key.hcl_type, required=False)),
            default=spec.Spec(literal=spec.Literal(value=key.default))))
        for name, key in KEYS.items()}
    return spec.Spec(object=spec.Object(attributes=attributes))


def fingerprint(pb: Protos, groups: tuple[Group, ...]) -> Any:
    dev = pb.device
    return dev.FingerprintResponse(device_group=[
        dev.DeviceGroup(
            vendor=g.vendor, device_type=g.device_type, device_name=g.name,
            devices=[_detected(pb, d) for d in g.devices],
            attributes={key: _attribute(pb, value) for key, value in g.attributes})
        for g in groups])


def _detected(pb: Protos, d: GpuDevice) -> Any:
    found = pb.device.DetectedDevice(ID=device_id(d), healthy=d.healthy,
                                     health_description=d.health_reason)
    if d.pci_bus_id:  # Nomad reads an absent locality as "unknown", an empty one as ""
        found.hw_locality.pci_bus_id = d.pci_bus_id
    return found


def _attribute(pb: Protos, value: Attribute) -> Any:
    if value.int_val is not None:
        return pb.attribute.Attribute(int_val=value.int_val, unit=value.unit)
    return pb.attribute.Attribute(string_val=value.string_val or "", unit=value.unit)


def stats(pb: Protos, groups: tuple[Group, ...], taken_at: float) -> Any:
    """One StatsResponse: per device, memory used of total as the summary (what Nomad's
    NVIDIA plugin shows), and each reading the tool gave, stamped with when it was read."""
    dev = pb.device
    out = []
    for group in groups:
        instances = {}
        for d in group.devices:
            instances[device_id(d)] = dev.DeviceStats(
                summary=_fraction(pb, d.memory_used_mb, d.memory_total_mb, "MiB",
                                  "memory used of total"),
                stats=pb.stats.StatObject(attributes=_readings(pb, d)),
                timestamp=_timestamp(taken_at))
        out.append(dev.DeviceGroupStats(vendor=group.vendor, type=group.device_type,
                                        name=group.name, instance_stats=instances))
    return dev.StatsResponse(groups=out)


def _readings(pb: Protos, d: GpuDevice) -> dict[str, Any]:
    readings = {
        "memory": _fraction(pb, d.memory_used_mb, d.memory_total_mb, "MiB",
                            "memory used of total"),
        "memory_free": _int(pb, d.memory_free_mb, "MiB", "memory free"),
    }
    for key, value, unit, desc in (
            ("utilization", d.utilization_percent, "%", "compute utilisation"),
            ("temperature", d.temperature_c, "C", "temperature"),
            ("power", d.power_w, "W", "power draw")):
        if value is not None:
            readings[key] = pb.stats.StatValue(
                float_numerator_val=_wrap("DoubleValue", float(value)), unit=unit,
                desc=desc)
    return readings


def _fraction(pb: Protos, used: int, total: int, unit: str, desc: str) -> Any:
    return pb.stats.StatValue(int_numerator_val=_wrap("Int64Value", used),
                              int_denominator_val=_wrap("Int64Value", total),
                              unit=unit, desc=desc)


def _int(pb: Protos, value: int, unit: str, desc: str) -> Any:
    return pb.stats.StatValue(int_numerator_val=_wrap("Int64Value", value), unit=unit,
                              desc=desc)


def _wrap(kind: str, value: float | int) -> Any:
    return getattr(wrappers_pb2, kind)(value=value)


def _timestamp(seconds: float) -> Any:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def reservation(pb: Protos, res: Reservation) -> Any:
    dev = pb.device
    return dev.ReserveResponse(container_res=dev.ContainerReservation(
        envs=res.envs,
        devices=[dev.DeviceSpec(task_path=f.task_path, host_path=f.host_path,
                                permissions=f.permissions) for f in res.devices],
        mounts=[dev.Mount(task_path=task, host_path=host, read_only=True)
                for host, task in res.mounts]))
