"""The ``heteroflow-gpu`` Nomad device plugin, launched as Nomad's plugin loader launches it
(tests/support/nomad_plugin_client.py), against every vendor's recorded tool output."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import hcl2
import pytest

from agent_plugin.nomad_device.config import KEYS, parse_config
from heteroflow_contracts.vendors import VENDORS
from tests.support.agent_helpers import GPU_FIXTURES, ToolBox
from tests.support.nomad_plugin_client import PluginClient, PluginStartFailed
from tests.support.vendor_tools import add_all_vendor_tools, make_host_root

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tool folder, host root) shared by the module's plugin."""
    base = tmp_path_factory.mktemp("gpu-host")
    (base / "bin").mkdir()
    add_all_vendor_tools(ToolBox(base / "bin"))
    return base / "bin", make_host_root(base / "root")


@pytest.fixture(scope="module")
def plugin(host: tuple[Path, Path]) -> Iterator[PluginClient]:
    tools, root = host
    with PluginClient() as client:
        client.set_config({"tool_path": str(tools), "host_root": str(root), "nvml": False})
        yield client


@pytest.fixture(scope="module")
def groups(plugin: PluginClient) -> dict[str, list[Any]]:
    by_vendor: dict[str, list[Any]] = {}
    for group in next(plugin.fingerprint()).device_group:
        by_vendor.setdefault(group.vendor, []).append(group)
    return by_vendor


def ids(groups: list[Any]) -> list[str]:
    return [d.ID for g in groups for d in g.devices]


class TestHandshake:
    def test_handshake_line_health_and_shutdown(self, tmp_path: Path) -> None:
        client = PluginClient(socket_dir=tmp_path)
        try:
            shake = client.handshake
            assert (shake.core_version, shake.app_version, shake.network, shake.protocol) \
                == (1, 2, "unix", "grpc")
            assert Path(shake.address).parent == tmp_path and Path(shake.address).exists()
        finally:
            code = client.close()
        assert code == 0  # GRPCController.Shutdown ended it; nothing had to be killed
        assert not Path(shake.address).exists()

    @pytest.mark.parametrize("cookie", ["wrong", ""])
    def test_a_wrong_magic_cookie_is_refused(self, cookie: str) -> None:
        with pytest.raises(PluginStartFailed) as refused:
            PluginClient(cookie=cookie)
        assert refused.value.returncode == 1
        assert "This binary is a plugin" in refused.value.stderr

    def test_a_host_without_protocol_2_is_refused(self) -> None:
        with pytest.raises(PluginStartFailed) as refused:
            PluginClient(protocol_versions="1")
        assert refused.value.returncode == 1 and "speaks 2" in refused.value.stderr


    def test_logs_are_hclog_json_lines_for_the_host(self, tmp_path: Path) -> None:
        client = PluginClient()
        try:
            client.set_config({"tool_path": str(tmp_path), "vendors": ["biren"]})
        finally:
            client.close()
        lines = [json.loads(line) for line in client.stderr.splitlines()]
        (configured,) = [e for e in lines if e["@message"] == "configured"]
        assert configured["@level"] == "info" and configured["vendors"] == ["biren"]
        # the only layout go-plugin's log parser accepts
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z",
                            configured["@timestamp"])


class TestBasePlugin:
    def test_plugin_info(self, plugin: PluginClient) -> None:
        info = plugin.plugin_info()
        assert info.type == plugin.pb.base.DEVICE
        assert list(info.plugin_api_versions) == ["v0.1.0"]
        assert info.name == "heteroflow-gpu" and info.plugin_version == "0.1.0"

    def test_config_schema_gives_every_key_a_default(self, plugin: PluginClient) -> None:
        spec = plugin.config_schema().spec
        keys = spec.object.attributes
        assert {"enabled", "fingerprint_period", "vendors", "tool_path", "host_root",
                "nvml"} <= set(keys)
        period = keys["fingerprint_period"].default
        assert period.primary.Attr.type == "string" and period.default.literal.value == '"1m"'
        assert keys["vendors"].default.primary.Attr.type == "list(string)"

    @pytest.mark.parametrize(("config", "words"), [
        ({"vendors": ["nvidia", "acme"]}, "no detector for acme"),
        ({"fingerprint_period": "soon"}, "not a duration"),
        ({"colour": "blue"}, "unknown config keys: colour"),
    ])
    def test_set_config_rejects_a_wrong_block(self, plugin: PluginClient,
                                              config: dict[str, Any], words: str) -> None:
        with pytest.raises(grpc.RpcError) as wrong:
            plugin.set_config(config)
        assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert words in str(wrong.value.details())

    def test_set_config_rejects_another_api_version(self, plugin: PluginClient) -> None:
        with pytest.raises(grpc.RpcError) as wrong:
            plugin.set_config({}, api_version="v9.0.0")
        assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class TestFingerprint:
    def test_every_vendor_is_a_gpu_device_group(self, groups: dict[str, list[Any]]) -> None:
        assert set(groups) == set(VENDORS)
        assert {g.device_type for gs in groups.values() for g in gs} == {"gpu"}

    def test_ids_are_the_tools_stable_ids(self, groups: dict[str, list[Any]]) -> None:
        assert ids(groups["nvidia"]) == ["GPU-1a2b3c4d-aaaa-bbbb-cccc-1234567890ab",
                                         "GPU-2b3c4d5d-bbbb-cccc-dddd-234567890abc"]
        assert ids(groups["amd"]) == ["0xA7BC2D1E4F5A6B7C", "0xB8CD3E2F5A6B7C8D"]
        assert ids(groups["ascend"]) == ["0000:C1:00.0/0", "0000:01:00.0/0",
                                         "0000:81:00.0/0"]
        assert ids(groups["metax"]) == ["0000:0f:00.0", "0000:34:00.0"]  # the bus id
        every = [i for gs in groups.values() for i in ids(gs)]
        assert len(every) == len(set(every))

    def test_attributes_memory_driver_and_compute_capability(
            self, groups: dict[str, list[Any]]) -> None:
        (nvidia,) = groups["nvidia"]
        assert nvidia.device_name == "NVIDIA A100-SXM4-40GB"
        memory = nvidia.attributes["memory"]
        assert (memory.int_val, memory.unit) == (40960, "MiB")
        assert nvidia.attributes["driver_version"].string_val == "535.129.03"
        assert nvidia.attributes["compute_capability"].string_val == "8.0"
        assert nvidia.devices[0].hw_locality.pci_bus_id == "00000000:07:00.0"
        assert {g.device_name for g in groups["iluvatar"]} == \
            {"Iluvatar MR-V100", "Iluvatar MR-V50"}  # one group per model

    def test_health_comes_from_the_tools(self, groups: dict[str, list[Any]]) -> None:
        chips = {d.ID: d for d in groups["ascend"][0].devices}
        assert chips["0000:C1:00.0/0"].healthy
        assert not chips["0000:81:00.0/0"].healthy
        assert "Warning" in chips["0000:81:00.0/0"].health_description


def _write(path: Path, text: str) -> None:
    temporary = path.with_suffix(".new")
    temporary.write_text(text)
    temporary.replace(path)  # the tool never reads half a file


class TestHealthChanges:
    def test_a_gpu_turning_unhealthy_appears_in_the_stream(self, tmp_path: Path) -> None:
        recorded = (GPU_FIXTURES / "npu_smi_910b.txt").read_text()
        current, failing = tmp_path / "info.txt", tmp_path / "failing"
        _write(current, recorded.replace("Warning", "OK     "))
        ToolBox(tmp_path).add("npu-smi", body=(
            f'case "$*" in\n  info) [ -f {failing} ] && {{ echo "dcmi init failed" >&2; '
            f'exit 3; }}; cat {current} ;;\n'
            f'  "info -m") cat {GPU_FIXTURES}/npu_smi_910b_m.txt ;;\nesac'))
        with PluginClient() as plugin:
            plugin.set_config({"tool_path": str(tmp_path), "vendors": ["ascend"],
                               "fingerprint_period": "100ms"})
            stream = plugin.fingerprint()

            def health() -> dict[str, tuple[bool, str]]:
                (group,) = next(stream).device_group
                return {d.ID: (d.healthy, d.health_description) for d in group.devices}

            assert all(ok for ok, _ in health().values())
            _write(current, recorded)
            turned = health()
            assert turned["0000:81:00.0/0"] == (False, "npu-smi reports health 'Warning'")
            assert turned["0000:C1:00.0/0"] == (True, "")
            failing.touch()
            lost = health()
            assert set(lost) == set(turned)  # still listed: Nomad may have them placed
            assert not any(ok for ok, _ in lost.values())
            assert "dcmi init failed" in lost["0000:C1:00.0/0"][1]
            failing.unlink()
            _write(current, recorded.replace("Warning", "OK     "))
            assert all(ok for ok, _ in health().values())


class TestStreamsOutliveAConfigChange:
    def test_fingerprint_follows_a_new_config(self, host: tuple[Path, Path]) -> None:
        # Nomad drops every device of a plugin whose Fingerprint stream ends
        with PluginClient() as plugin:
            plugin.set_config({"tool_path": str(host[0]), "nvml": False,
                               "vendors": ["amd"]})
            stream = plugin.fingerprint()
            assert [g.vendor for g in next(stream).device_group] == ["amd"]
            plugin.set_config({"tool_path": str(host[0]), "nvml": False,
                               "vendors": ["metax", "kunlunxin"]})
            assert [g.vendor for g in next(stream).device_group] == ["kunlunxin", "metax"]

    def test_a_disabled_plugin_reports_nothing_but_stays(self, host: tuple[Path, Path]) -> None:
        with PluginClient() as plugin:
            plugin.set_config({"enabled": False, "tool_path": str(host[0])})
            stream = plugin.fingerprint()
            assert list(next(stream).device_group) == []
            plugin.set_config({"tool_path": str(host[0]), "nvml": False,
                               "vendors": ["biren"]})
            assert [g.vendor for g in next(stream).device_group] == ["biren"]


# Reserving each vendor's second device (index 1): per-device nodes for that device only,
# the vendor's control nodes, and the variables (host ids for the container runtimes'
# variables, 0.. for those read inside the task).
RESERVE = {
    "nvidia": ({"NVIDIA_VISIBLE_DEVICES": "GPU-2b3c4d5d-bbbb-cccc-dddd-234567890abc",
                "CUDA_VISIBLE_DEVICES": "GPU-2b3c4d5d-bbbb-cccc-dddd-234567890abc"},
               ["nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia1"]),
    "amd": ({"ROCR_VISIBLE_DEVICES": "0", "HIP_VISIBLE_DEVICES": "0"},
            ["kfd", "dri/card1", "dri/renderD129"]),
    "hygon": ({"HIP_VISIBLE_DEVICES": "0"}, ["kfd", "mkfd", "dri/card3", "dri/renderD131"]),
    "ascend": ({"ASCEND_VISIBLE_DEVICES": "1", "ASCEND_RT_VISIBLE_DEVICES": "0"},
               ["davinci_manager", "devmm_svm", "hisi_hdc", "davinci1"]),
    "musa": ({"MTHREADS_VISIBLE_DEVICES": "1", "MUSA_VISIBLE_DEVICES": "0"},
             ["mtgpu.1", "dri/card5", "dri/renderD133"]),
    "biren": ({"BR_VISIBLE_DEVICES": "0"}, ["biren1"]),
    "cambricon": ({"MLU_VISIBLE_DEVICES": "0"},
                  ["cambricon_ctl", "cambricon_ipcm0", "cambricon_ipcm1", "cambricon_dev1"]),
    "iluvatar": ({"CUDA_VISIBLE_DEVICES": "0"}, ["itrctl", "iluvatar1"]),
    "metax": ({"CUDA_VISIBLE_DEVICES": "0"}, ["mxcd", "mxnd", "mxgd", "dri/card7",
                                              "dri/renderD135"]),
    "enflame": ({"TOPS_VISIBLE_DEVICES": "0"}, ["gcuctl", "gcu1"]),
    "kunlunxin": ({"XPU_VISIBLE_DEVICES": "0"}, ["xpuctrl", "xpu1"]),
}


class TestReserve:
    @pytest.mark.parametrize("vendor", list(VENDORS))
    def test_environment_and_device_files(self, plugin: PluginClient, vendor: str,
                                          groups: dict[str, list[Any]],
                                          host: tuple[Path, Path]) -> None:
        second = ids(groups[vendor])[1]
        answer = plugin.reserve([second]).container_res
        envs, nodes = RESERVE[vendor]
        assert dict(answer.envs) == envs
        root = host[1].resolve()
        assert [(d.task_path, d.host_path, d.permissions) for d in answer.devices] == \
            [(f"/dev/{n}", f"{root}/dev/{n}", "rwm") for n in nodes]
        mounts = [(m.task_path, m.host_path, m.read_only) for m in answer.mounts]
        assert mounts == ([("/usr/local/Ascend/driver", f"{root}/usr/local/Ascend/driver",
                            True)] if vendor == "ascend" else [])

    def test_two_devices_count_from_zero_inside_the_task(
            self, plugin: PluginClient, groups: dict[str, list[Any]]) -> None:
        answer = plugin.reserve(list(reversed(ids(groups["amd"])))).container_res
        assert dict(answer.envs) == {"ROCR_VISIBLE_DEVICES": "0,1",
                                     "HIP_VISIBLE_DEVICES": "0,1"}
        assert [d.task_path for d in answer.devices] == \
            ["/dev/kfd", "/dev/dri/card0", "/dev/dri/renderD128", "/dev/dri/card1",
             "/dev/dri/renderD129"]

    def test_reserve_waits_for_the_first_detection(self, tmp_path: Path) -> None:
        ToolBox(tmp_path).add("brsmi", replay="brsmi_106m.csv", sleep_s=1)
        with PluginClient() as plugin:
            plugin.set_config({"tool_path": str(tmp_path), "vendors": ["biren"],
                               "host_root": str(make_host_root(tmp_path / "root"))})
            answer = plugin.reserve(["GPU-7f0c9d2e-1b3a-4c5d-8e9f-0a1b2c3d4e5f"])
        assert dict(answer.container_res.envs) == {"BR_VISIBLE_DEVICES": "0"}

    def test_nvidias_node_is_the_drivers_minor_number(self, tmp_path: Path) -> None:
        ToolBox(tmp_path).add("nvidia-smi", replay="nvidia_smi_a100x2.csv")
        root = make_host_root(tmp_path / "root")
        gpus = root / "proc" / "driver" / "nvidia" / "gpus"
        (gpus / "0000:0f:00.0").mkdir(parents=True)  # the second A100, "00000000:0F:00.0"
        (gpus / "0000:0f:00.0" / "information").write_text(
            "Model: \t NVIDIA A100-SXM4-40GB\nBus Location: \t 0000:0f:00.0\n"
            "Device Minor: \t 0\n")
        with PluginClient() as plugin:
            plugin.set_config({"tool_path": str(tmp_path), "vendors": ["nvidia"],
                               "nvml": False, "host_root": str(root)})
            answer = plugin.reserve(["GPU-2b3c4d5d-bbbb-cccc-dddd-234567890abc"])
        assert [d.task_path for d in answer.container_res.devices][-1] == "/dev/nvidia0"

    def test_an_unknown_device_is_refused(self, plugin: PluginClient) -> None:
        with pytest.raises(grpc.RpcError) as wrong:
            plugin.reserve(["GPU-not-here"])
        assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "GPU-not-here" in str(wrong.value.details())

    def test_a_missing_device_node_is_refused(self, plugin: PluginClient) -> None:
        with pytest.raises(grpc.RpcError) as wrong:
            plugin.reserve(["0000:81:00.0/0"])  # this host has no /dev/davinci2
        assert wrong.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "davinci2 does not exist" in str(wrong.value.details())


class TestStats:
    def test_stats_stream_readings(self, plugin: PluginClient) -> None:
        stream = plugin.stats(0.2)
        first, second = next(stream), next(stream)
        by_vendor = {g.vendor: g for g in first.groups}
        assert set(by_vendor) == set(VENDORS)
        a100 = by_vendor["nvidia"].instance_stats["GPU-1a2b3c4d-aaaa-bbbb-cccc-1234567890ab"]
        assert (a100.summary.int_numerator_val.value, a100.summary.int_denominator_val.value,
                a100.summary.unit) == (1234, 40960, "MiB")
        readings = a100.stats.attributes
        assert readings["temperature"].float_numerator_val.value == 35.0
        assert readings["power"].unit == "W"
        assert a100.timestamp.seconds > 0
        assert len(second.groups) == len(first.groups)


def test_the_plugin_leaves_no_process_behind(tmp_path: Path) -> None:
    with PluginClient(socket_dir=tmp_path) as client:
        assert client.process.poll() is None
    assert client.process.returncode == 0  # exited by itself on Shutdown
    assert os.listdir(tmp_path) == []  # its socket is gone too


def test_the_dev_agent_config_loads_the_plugin_with_known_keys() -> None:
    config = hcl2.load((Path(__file__).resolve().parents[2] / "nomad.hcl").open())
    blocks = {name.strip('"'): body for block in config["plugin"] for name, body in block.items()}
    assert "heteroflow-gpu" in blocks and "nomad-device-nvidia" not in blocks
    (settings,) = blocks["heteroflow-gpu"]["config"]
    assert {k for k in settings if not k.startswith("__")} <= set(KEYS)
    assert parse_config({k: v.strip('"') for k, v in settings.items()
                         if not k.startswith("__")}).fingerprint_period_s == 60
