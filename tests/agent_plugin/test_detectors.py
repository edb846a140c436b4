"""GPU detectors against recorded outputs of every vendor's tool (replayed by real
executables), and the failure cases: tool missing, garbage output, timeout, non-zero exit."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent_plugin.detectors import DETECTORS, DetectContext, ToolRunner, detect_all
from agent_plugin.detectors.nvidia import NvidiaDetector, read_nvml
from agent_plugin.models import DetectionReport, GpuDevice
from tests.support.agent_helpers import GPU_FIXTURES, ToolBox


class RecordedNvml:
    """A stand-in for pynvml (a third-party C binding) that answers from recorded NVML
    readings, so the NVML mapping is tested without an NVIDIA driver."""

    def __init__(self, recording: dict[str, Any]) -> None:
        self.data = recording
        self.initialised = False

    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlSystemGetDriverVersion(self) -> str:
        return str(self.data["driver_version"])

    def nvmlDeviceGetCount(self) -> int:
        return len(self.data["devices"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return dict(self.data["devices"][index])

    def nvmlDeviceGetName(self, h: dict[str, Any]) -> bytes:
        return str(h["name"]).encode()  # older bindings return bytes

    def nvmlDeviceGetUUID(self, h: dict[str, Any]) -> str:
        return str(h["uuid"])

    def nvmlDeviceGetMemoryInfo(self, h: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(**h["memory"])

    def nvmlDeviceGetUtilizationRates(self, h: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(gpu=h["utilization_gpu"], memory=0)

    def nvmlDeviceGetTemperature(self, h: dict[str, Any], sensor: int) -> int:
        assert sensor == 0
        return int(h["temperature"])

    def nvmlDeviceGetPowerUsage(self, h: dict[str, Any]) -> int:
        if h["power_mw"] is None:
            raise RuntimeError("Not Supported")
        return int(h["power_mw"])

    def nvmlDeviceGetPciInfo(self, h: dict[str, Any]) -> SimpleNamespace:
        return SimpleNamespace(busId=h["pci_bus_id"])

    def nvmlDeviceGetCudaComputeCapability(self, h: dict[str, Any]) -> tuple[int, int]:
        major, minor = h["compute_capability"]
        return int(major), int(minor)

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h: dict[str, Any]) -> int:
        return int(h["retired_pages_pending"])


class BrokenNvml(RecordedNvml):
    def __init__(self) -> None:
        super().__init__({})

    def nvmlInit(self) -> None:
        raise RuntimeError("NVML Shared Library Not Found")


def nvml_recording() -> RecordedNvml:
    return RecordedNvml(json.loads((GPU_FIXTURES / "nvidia_nvml_a100x2.json").read_text()))


async def detect_one(ctx: DetectContext, vendor: str, *, nvml: Any = None) -> DetectionReport:
    registry = dict(DETECTORS)
    registry["nvidia"] = NvidiaDetector(nvml=nvml or BrokenNvml())
    return await detect_all(ctx, [vendor], registry)


def only(report: DetectionReport, vendor: str) -> list[GpuDevice]:
    assert vendor not in report.skipped, report.skipped
    assert all(d.vendor == vendor for d in report.devices)
    return list(report.devices)


class TestNvidia:
    async def test_nvml_readings_become_devices(self, toolbox: ToolBox) -> None:
        report = await detect_one(toolbox.context(), "nvidia", nvml=nvml_recording())
        first, second = only(report, "nvidia")
        assert first.name == "NVIDIA A100-SXM4-40GB"
        assert first.uuid == "GPU-1a2b3c4d-aaaa-bbbb-cccc-1234567890ab"
        assert (first.memory_total_mb, first.memory_used_mb, first.memory_free_mb) == \
            (40960, 1234, 39726)
        assert first.compute_capability == "8.0"
        assert first.power_w == 70.5 and first.temperature_c == 35.0
        assert first.driver_version == "535.129.03" and first.pci_bus_id == "00000000:07:00.0"
        assert first.healthy and first.health_reason == ""
        assert second.power_w is None  # NotSupported is a missing reading, not a failure
        assert not second.healthy and "retired" in second.health_reason

    def test_nvml_is_shut_down_after_reading(self) -> None:
        nvml = nvml_recording()
        read_nvml(nvml)
        assert not nvml.initialised

    async def test_without_nvml_nvidia_smi_answers(self, toolbox: ToolBox) -> None:
        toolbox.add("nvidia-smi", replay="nvidia_smi_a100x2.csv")
        devices = only(await detect_one(toolbox.context(), "nvidia"), "nvidia")
        assert [d.index for d in devices] == [0, 1]
        assert devices[0].memory_total_mb == 40960 and devices[0].compute_capability == "8.0"
        assert devices[1].power_w is None and devices[1].utilization_percent == 12.0

    async def test_real_nvml_missing_here_is_a_reason(self, toolbox: ToolBox) -> None:
        import pynvml  # type: ignore[import-untyped]

        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError:
            pass
        else:
            pynvml.nvmlShutdown()
            pytest.skip("this machine has a working NVIDIA driver")
        report = await detect_all(toolbox.context(), ["nvidia"])
        assert report.devices == ()
        assert "NVML" in report.skipped["nvidia"] and "nvidia-smi" in report.skipped["nvidia"]

    @pytest.mark.skipif(shutil.which("nvidia-smi") is None, reason="no NVIDIA GPU here")
    async def test_real_nvml_agrees_with_nvidia_smi(self) -> None:
        system = DetectContext(tools=ToolRunner(str(Path(shutil.which("nvidia-smi") or
                                                         "").parent), 30))
        via_nvml = await NvidiaDetector().detect(system)
        via_smi = await NvidiaDetector(nvml=BrokenNvml()).detect(system)
        assert [(d.uuid, d.name, d.memory_total_mb, d.compute_capability, d.pci_bus_id)
                for d in via_nvml] == \
            [(d.uuid, d.name, d.memory_total_mb, d.compute_capability, d.pci_bus_id)
             for d in via_smi]


class TestAmd:
    async def test_amd_smi(self, toolbox: ToolBox) -> None:
        toolbox.add("amd-smi", body=(
            f'case "$1" in static) cat {GPU_FIXTURES}/amd_smi_static_mi300x.json ;;\n'
            f'metric) cat {GPU_FIXTURES}/amd_smi_metric_mi300x.json ;; esac'))
        first, second = only(await detect_one(toolbox.context(), "amd"), "amd")
        assert first.name == "AMD Instinct MI300X" and first.uuid == "0xA7BC2D1E4F5A6B7C"
        assert (first.memory_total_mb, first.memory_used_mb, first.memory_free_mb) == \
            (196592, 4096, 192496)
        assert first.utilization_percent == 37 and first.temperature_c == 42
        assert first.power_w == 136 and first.pci_bus_id == "0000:0c:00.0"
        assert first.driver_version == "6.8.5"
        assert second.index == 1 and second.power_w is None

    async def test_rocm_smi_when_amd_smi_is_missing(self, toolbox: ToolBox) -> None:
        toolbox.add("rocm-smi", replay="rocm_smi_rx7800xt.json")
        (card,) = only(await detect_one(toolbox.context(), "amd"), "amd")
        assert card.name == "Navi 32 [Radeon RX 7700 XT / 7800 XT]"
        assert card.uuid == "5c88007d760374f3"
        assert card.memory_total_mb == 17163091968 // 2**20
        assert card.memory_used_mb == 11615703040 // 2**20
        assert card.temperature_c == 51.0  # junction, the sensor that throttles
        assert card.utilization_percent == 100 and card.power_w == 53.0
        assert card.driver_version == "6.10.5" and card.pci_bus_id == "0000:03:00.0"

    async def test_rocm_smi_on_a_hygon_host_reports_no_amd_gpu(self, toolbox: ToolBox) -> None:
        toolbox.add("rocm-smi", replay="hy_smi_k100ai.json")
        report = await detect_one(toolbox.context(), "amd")
        assert report.devices == ()
        assert "no AMD GPU" in report.skipped["amd"] or "no devices" in report.skipped["amd"]

    async def test_sysfs_when_no_tool_is_installed(self, toolbox: ToolBox,
                                                   tmp_path: Path) -> None:
        sysfs = tmp_path / "sys"
        dev = sysfs / "class" / "drm" / "card1" / "device"
        files = {"vendor": "0x1002", "device": "0x744c", "mem_info_vram_total": "25753026560",
                 "mem_info_vram_used": "1073741824", "gpu_busy_percent": "42",
                 "unique_id": "b3c4d5e6f7a8b9c0",
                 "uevent": "DRIVER=amdgpu\nPCI_SLOT_NAME=0000:03:00.0",
                 "hwmon/hwmon3/temp1_input": "55000", "hwmon/hwmon3/power1_average": "120000000"}
        for name, content in files.items():
            (dev / name).parent.mkdir(parents=True, exist_ok=True)
            (dev / name).write_text(content + "\n")
        nvidia = sysfs / "class" / "drm" / "card0" / "device"
        nvidia.mkdir(parents=True)
        (nvidia / "vendor").write_text("0x10de\n")
        (sysfs / "class" / "drm" / "card1-DP-1").mkdir()
        (card,) = only(await detect_one(toolbox.context(sysfs_root=sysfs), "amd"), "amd")
        assert (card.index, card.name, card.uuid) == (0, "AMD GPU 0x744c", "b3c4d5e6f7a8b9c0")
        assert (card.memory_total_mb, card.memory_used_mb) == (24560, 1024)
        assert (card.utilization_percent, card.temperature_c, card.power_w) == (42, 55, 120)
        assert card.pci_bus_id == "0000:03:00.0"

    async def test_every_source_failing_gives_every_reason(self, toolbox: ToolBox) -> None:
        report = await detect_one(toolbox.context(), "amd")
        reason = report.skipped["amd"]
        assert "amd-smi:" in reason and "rocm-smi:" in reason and "sysfs:" in reason


class TestVendorTools:
    async def test_hygon_hy_smi(self, toolbox: ToolBox) -> None:
        toolbox.add("hy-smi", replay="hy_smi_k100ai.json")
        first, second = only(await detect_one(toolbox.context(), "hygon"), "hygon")
        assert (first.name, first.uuid, first.memory_total_mb, first.memory_used_mb) == \
            ("K100_AI", "a000000000000000", 65520, 2)
        assert first.temperature_c == 35.0 and first.power_w == 77.0
        assert second.utilization_percent == 12.5 and second.memory_free_mb == 65520 - 30720

    async def test_ascend_910b_uses_logical_ids_and_health(self, toolbox: ToolBox) -> None:
        toolbox.add("npu-smi", by_args={"info": "npu_smi_910b.txt",
                                        "info -m": "npu_smi_910b_m.txt"})
        devices = only(await detect_one(toolbox.context(), "ascend"), "ascend")
        assert [d.index for d in devices] == [0, 1, 2]  # NPU 4 is logical chip 2
        first = devices[0]
        assert (first.name, first.pci_bus_id, first.driver_version) == \
            ("Ascend 910B1", "0000:C1:00.0", "23.0.rc3.3")
        assert (first.memory_used_mb, first.memory_total_mb) == (65099, 65536)  # HBM
        assert (first.utilization_percent, first.power_w, first.temperature_c) == \
            (55, 271.1, 41)
        assert first.healthy and not devices[2].healthy
        assert "Warning" in devices[2].health_reason

    async def test_ascend_310p_lists_each_chip(self, toolbox: ToolBox) -> None:
        toolbox.add("npu-smi", by_args={"info": "npu_smi_310p3.txt"})  # no -m: exits 64
        devices = only(await detect_one(toolbox.context(), "ascend"), "ascend")
        assert [d.index for d in devices] == [0, 1, 2, 3]
        assert [d.memory_total_mb for d in devices] == [44278, 43693, 44278, 43693]
        assert devices[0].power_w is None and devices[0].temperature_c == 49
        assert len({d.uuid for d in devices}) == 4

    async def test_moore_threads(self, toolbox: ToolBox) -> None:
        toolbox.add("mthreads-gmi", replay="mthreads_gmi_s5000.json")
        first, second = only(await detect_one(toolbox.context(), "musa"), "musa")
        assert (first.name, first.uuid, first.memory_total_mb) == \
            ("MTT S5000", "399282a8-ba01-1475-893c-2eeca9e302f5", 81920)
        assert first.power_w == 96.66 and first.temperature_c == 27
        assert first.driver_version == "3.3.5-server" and first.pci_bus_id == "00000000:2a:00.0"
        assert second.utilization_percent == 87 and second.memory_used_mb == 40960

    async def test_biren(self, toolbox: ToolBox) -> None:
        toolbox.add("brsmi", replay="brsmi_106m.csv")
        first, second = only(await detect_one(toolbox.context(), "biren"), "biren")
        assert (first.name, first.memory_total_mb, first.memory_used_mb) == \
            ("Biren BR106M", 32512, 1024)
        assert first.power_w == 150.25 and second.temperature_c is None

    async def test_cambricon_report_file(self, toolbox: ToolBox) -> None:
        toolbox.add("cnmon", body=(
            f'cp {GPU_FIXTURES}/cnmon_info_mlu370.json cnmon_info.json\n'
            'echo "Card 0 MLU370-X8 (human table)"'))
        first, second = only(await detect_one(toolbox.context(), "cambricon"), "cambricon")
        assert (first.name, first.memory_total_mb, first.memory_used_mb) == \
            ("MLU370-X8", 24576, 1024)
        assert first.temperature_c == 42 and first.utilization_percent == 7
        assert first.pci_bus_id == "0000:3b:00.0" and first.driver_version == "v5.10.22"
        assert second.power_w is None

    async def test_iluvatar(self, toolbox: ToolBox) -> None:
        toolbox.add("ixsmi", replay="ixsmi_mrv100.csv")
        first, second = only(await detect_one(toolbox.context(), "iluvatar"), "iluvatar")
        assert (first.name, first.memory_total_mb, first.memory_used_mb) == \
            ("Iluvatar MR-V100", 32768, 27780)
        assert first.temperature_c == 44 and first.pci_bus_id == "00000000:0C:00.0"
        assert second.name == "Iluvatar MR-V50"

    async def test_metax(self, toolbox: ToolBox) -> None:
        toolbox.add("mx-smi", replay="mx_smi_c550.txt")
        first, second = only(await detect_one(toolbox.context(), "metax"), "metax")
        assert (first.name, first.pci_bus_id, first.memory_used_mb, first.memory_total_mb) == \
            ("MetaX C550", "0000:0f:00.0", 858, 65536)
        assert (first.temperature_c, first.power_w, first.driver_version) == \
            (29, 53, "2.15.9")
        assert second.utilization_percent == 61

    async def test_enflame_old_and_new_keys(self, toolbox: ToolBox) -> None:
        toolbox.add("efsmi", replay="efsmi_s60.txt")
        first, second = only(await detect_one(toolbox.context(), "enflame"), "enflame")
        assert (first.name, first.uuid, first.memory_total_mb, first.memory_used_mb) == \
            ("S60", "TR1V57100501", 42976, 1129)
        assert (first.power_w, first.temperature_c, first.pci_bus_id) == \
            (99, 35, "0000:b1:00.0")
        assert second.memory_used_mb == 38934 and second.utilization_percent == 88.5
        assert not second.healthy

    async def test_kunlunxin(self, toolbox: ToolBox) -> None:
        toolbox.add("xpu_smi", replay="xpu_smi_p800.txt")
        first, second = only(await detect_one(toolbox.context(), "kunlunxin"), "kunlunxin")
        assert (first.name, first.uuid, first.memory_used_mb, first.memory_total_mb) == \
            ("Kunlunxin P800 OAM", "02K15K624CV00304", 90440, 98304)  # not the L3 pair
        assert (first.temperature_c, first.power_w) == (36, 86)
        assert second.index == 1

    async def test_static_inventory(self, toolbox: ToolBox) -> None:
        ctx = toolbox.context(inventory=GPU_FIXTURES / "inventory_dev.json")
        report = await detect_all(ctx, ["static"])
        a, b, c = report.devices
        assert (a.index, b.index, c.index) == (0, 1, 7)
        assert a.memory_free_mb == 24564 - 512 and b.uuid == "static-nvidia-1"
        assert c.vendor == "acme-npu" and not c.healthy and c.health_reason == "fan failure"


TOOLS = {"nvidia": "nvidia-smi", "amd": "amd-smi", "hygon": "hy-smi", "ascend": "npu-smi",
         "musa": "mthreads-gmi", "biren": "brsmi", "cambricon": "cnmon", "iluvatar": "ixsmi",
         "metax": "mx-smi", "enflame": "efsmi", "kunlunxin": "xpu_smi"}


class TestFailures:
    @pytest.mark.parametrize("vendor", list(TOOLS))
    async def test_tool_missing(self, toolbox: ToolBox, vendor: str) -> None:
        report = await detect_one(toolbox.context(), vendor)
        assert report.devices == ()
        assert "not found" in report.skipped[vendor] or "does not exist" in \
            report.skipped[vendor]

    @pytest.mark.parametrize("vendor", list(TOOLS))
    async def test_garbage_output(self, toolbox: ToolBox, vendor: str) -> None:
        toolbox.add(TOOLS[vendor], stdout="<html>502 Bad Gateway</html> \x1b[31m??")
        report = await detect_one(toolbox.context(), vendor)
        assert report.devices == ()
        assert TOOLS[vendor] in report.skipped[vendor]

    @pytest.mark.parametrize("vendor", list(TOOLS))
    async def test_timeout_kills_the_tool(self, toolbox: ToolBox, vendor: str) -> None:
        toolbox.timeout_s = 0.3
        toolbox.add(TOOLS[vendor], sleep_s=30)
        started = time.monotonic()
        report = await detect_one(toolbox.context(), vendor)
        assert time.monotonic() - started < 5
        assert "did not answer within 0.3 s" in report.skipped[vendor]

    async def test_non_zero_exit_carries_stderr(self, toolbox: ToolBox) -> None:
        toolbox.add("mx-smi", stderr="mx-smi: failed to open /dev/mxcd: Permission denied",
                    exit_code=3)
        report = await detect_one(toolbox.context(), "metax")
        assert "exited with status 3" in report.skipped["metax"]
        assert "Permission denied" in report.skipped["metax"]

    async def test_a_detector_bug_is_a_reason_not_a_crash(self, toolbox: ToolBox) -> None:
        class Crashing:
            vendor = "nvidia"

            async def detect(self, ctx: DetectContext) -> list[GpuDevice]:
                raise ZeroDivisionError("oops")

        toolbox.add("mx-smi", replay="mx_smi_c550.txt")
        registry = {**DETECTORS, "nvidia": Crashing()}
        report = await detect_all(toolbox.context(), ["nvidia", "metax", "nope"], registry)
        assert "ZeroDivisionError" in report.skipped["nvidia"]
        assert "no detector" in report.skipped["nope"]
        assert [d.vendor for d in report.devices] == ["metax", "metax"]

    async def test_all_vendors_at_once_on_this_machine(self, toolbox: ToolBox) -> None:
        toolbox.add("efsmi", replay="efsmi_s60.txt")
        report = await detect_one(toolbox.context(), "enflame")
        registry = {**DETECTORS, "nvidia": NvidiaDetector(nvml=BrokenNvml())}
        full = await detect_all(toolbox.context(), list(TOOLS), registry)
        assert set(full.skipped) == set(TOOLS) - {"enflame"}
        assert DetectionReport.from_json(json.loads(json.dumps(full.to_json()))) == full
        assert report.devices == full.devices
