"""GPUs offered as shares (docs/gpu-sharing.md) by the real ``heteroflow-gpu``, launched as
Nomad's loader launches it, against the recorded nvidia-smi output of two A100s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from agent_plugin.nomad_device.config import ConfigError, parse_config
from tests.support.agent_helpers import ToolBox
from tests.support.nomad_plugin_client import PluginClient
from tests.support.vendor_tools import make_host_root

pytestmark = pytest.mark.timeout(180)

FIRST = "GPU-1a2b3c4d-aaaa-bbbb-cccc-1234567890ab"  # 39726 MiB free of 40960
SECOND = "GPU-2b3c4d5d-bbbb-cccc-dddd-234567890abc"  # 38912 MiB free


@pytest.fixture
def nvidia(tmp_path: Path) -> Iterator[tuple[PluginClient, dict[str, Any]]]:
    ToolBox(tmp_path).add("nvidia-smi", replay="nvidia_smi_a100x2.csv")
    config = {"tool_path": str(tmp_path), "vendors": ["nvidia"], "nvml": False,
              "host_root": str(make_host_root(tmp_path / "root")),
              "fingerprint_period": "100ms"}
    with PluginClient() as plugin:
        yield plugin, config


def by_type(fingerprint: Any) -> dict[str, Any]:
    return {g.device_type: g for g in fingerprint.device_group}


def test_a_shared_gpu_is_offered_only_as_its_shares(
        nvidia: tuple[PluginClient, dict[str, Any]]) -> None:
    plugin, config = nvidia
    plugin.set_config({**config, "shares": {FIRST: 4}})
    groups = by_type(next(plugin.fingerprint()))
    assert [d.ID for d in groups["gpu"].devices] == [SECOND]
    share = groups["gpu-share"]
    assert (share.vendor, share.device_name) == ("nvidia", "NVIDIA A100-SXM4-40GB")
    assert [d.ID for d in share.devices] == [f"{FIRST}@share{i}" for i in range(4)]
    # the budget is the measured free memory split four ways, not the nominal 40960
    assert share.attributes["memory"].int_val == 39726 // 4
    assert share.attributes["isolation"].string_val == "mps"


def test_reserving_shares_sets_mps_limits_on_the_one_gpu(
        nvidia: tuple[PluginClient, dict[str, Any]]) -> None:
    plugin, config = nvidia
    plugin.set_config({**config, "shares": {FIRST: 4}})
    next(plugin.fingerprint())
    envs = dict(plugin.reserve([f"{FIRST}@share1", f"{FIRST}@share2"]).container_res.envs)
    assert envs["NVIDIA_VISIBLE_DEVICES"] == FIRST  # the GPU once, for two of its shares
    assert envs["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "50"
    assert envs["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == f"0={2 * (39726 // 4)}M"
    whole = dict(plugin.reserve([SECOND]).container_res.envs)
    assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" not in whole


def test_a_share_of_a_whole_gpu_is_unknown(
        nvidia: tuple[PluginClient, dict[str, Any]]) -> None:
    plugin, config = nvidia
    plugin.set_config(config)
    next(plugin.fingerprint())
    with pytest.raises(grpc.RpcError) as wrong:
        plugin.reserve([f"{SECOND}@share0"])
    assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_layout_file_switches_a_gpu_in_the_open_stream(
        nvidia: tuple[PluginClient, dict[str, Any]], tmp_path: Path) -> None:
    plugin, config = nvidia
    layout = tmp_path / "layout.json"
    plugin.set_config({**config, "share_layout": str(layout)})
    stream = plugin.fingerprint()
    assert set(by_type(next(stream))) == {"gpu"}
    layout.write_text(json.dumps({SECOND: 2}))
    shared = by_type(next(stream))  # a new message only because the layout changed
    assert [d.ID for d in shared["gpu"].devices] == [FIRST]
    assert [d.ID for d in shared["gpu-share"].devices] == [f"{SECOND}@share0",
                                                          f"{SECOND}@share1"]
    assert shared["gpu-share"].attributes["memory"].int_val == 38912 // 2
    layout.write_text(json.dumps({}))
    assert set(by_type(next(stream))) == {"gpu"}


@pytest.mark.parametrize("shares", [{"x": 0}, {"x": 9}, {"x": 1.5}, {"x": True}, ["x"]])
def test_a_share_count_outside_one_to_eight_is_refused(shares: object) -> None:
    with pytest.raises(ConfigError, match="shares"):
        parse_config({"shares": shares})


def pci_tree(root: Path, gpus: dict[str, tuple[str, ...]]) -> Path:
    """A sysfs PCI tree: each GPU's bus id linked from bus/pci/devices to its place below
    the given ancestors, as the kernel lays it out."""
    devices, links = root / "devices", root / "bus" / "pci" / "devices"
    links.mkdir(parents=True)
    for bus, ancestors in gpus.items():
        place = devices.joinpath(*ancestors, bus)
        place.mkdir(parents=True)
        (links / bus).symlink_to(place)
    return root


@pytest.mark.parametrize(("second", "expected"), [
    (("pci0000:00", "0000:00:01.0", "0000:01:00.0", "0000:02:01.0"), "pcie-switch"),
    (("pci0000:00", "0000:00:03.0"), "host-bridge"),
    (("pci0000:80", "0000:80:01.0"), "none"),
])
def test_the_groups_p2p_attribute_from_the_pci_tree(
        nvidia: tuple[PluginClient, dict[str, Any]], tmp_path: Path,
        second: tuple[str, ...], expected: str) -> None:
    plugin, config = nvidia
    sysfs = pci_tree(tmp_path / "sys", {
        "0000:07:00.0": ("pci0000:00", "0000:00:01.0", "0000:01:00.0", "0000:02:00.0"),
        "0000:0f:00.0": second})
    plugin.set_config({**config, "sysfs_root": str(sysfs)})
    (group,) = next(plugin.fingerprint()).device_group
    assert group.attributes["p2p"].string_val == expected
