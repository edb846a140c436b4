"""The wire contracts: exact JSON keys, round trips, and clear errors on wrong shapes;
and the visible-devices registry."""

from __future__ import annotations

import json

import pytest

from agent_plugin._json import ShapeError
from agent_plugin.models import DetectionReport, GpuDevice, ModelInfo, ScanResult
from heteroflow_contracts.vendors import VENDORS, UnknownVendor, device_files, visible_devices_env

DEVICE = GpuDevice(vendor="nvidia", index=0, uuid="GPU-1", name="NVIDIA A100",
                   memory_total_mb=40960, memory_used_mb=1, memory_free_mb=40959,
                   compute_capability="8.0")
MODEL = ModelInfo(name="m", format="gguf", path="/models/m.gguf", size_bytes=10, mtime=1.5)


class TestContracts:
    def test_gpu_device_keys(self) -> None:
        assert list(DEVICE.to_json()) == [
            "vendor", "index", "uuid", "name", "memory_total_mb", "memory_used_mb",
            "memory_free_mb", "utilization_percent", "temperature_c", "power_w",
            "driver_version", "pci_bus_id", "healthy", "health_reason", "compute_capability"]

    def test_model_info_keys(self) -> None:
        assert set(MODEL.to_json()) == {
            "name", "format", "path", "size_bytes", "architecture", "parameter_count",
            "quantization", "context_length", "num_layers", "hidden_size", "num_kv_heads",
            "head_dim", "estimated_vram_mb", "vram_explanation", "mtime"}

    def test_round_trips(self) -> None:
        report = DetectionReport(devices=(DEVICE,), skipped={"amd": "amd-smi not found"})
        scan = ScanResult(added=(MODEL,), removed=("/models/old.gguf",), models=(MODEL,))
        for value in (DEVICE, MODEL, report, scan):
            wire = json.loads(json.dumps(value.to_json()))
            assert type(value).from_json(wire) == value

    @pytest.mark.parametrize("broken", [
        {"index": "0"}, {"healthy": "yes"}, {"memory_total_mb": 1.5}, {"uuid": None}])
    def test_wrong_shapes_are_refused(self, broken: dict[str, object]) -> None:
        with pytest.raises(ShapeError):
            GpuDevice.from_json({**DEVICE.to_json(), **broken})
        with pytest.raises(ShapeError):
            ModelInfo.from_json({**MODEL.to_json(), "format": "onnx"})


class TestVisibility:
    def test_every_vendor_has_rules(self) -> None:
        for vendor in VENDORS:
            assert visible_devices_env(vendor, [0, 1])
            assert device_files(vendor)

    def test_nvidia(self) -> None:
        assert visible_devices_env("nvidia", [2, 3]) == {
            "CUDA_VISIBLE_DEVICES": "2,3", "NVIDIA_VISIBLE_DEVICES": "2,3"}
        assert visible_devices_env("nvidia", []) == {
            "CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "void"}

    def test_amd_filters_once(self) -> None:
        # ROCR picks the physical GPUs; HIP then counts among the survivors
        assert visible_devices_env("amd", [2, 3]) == {
            "ROCR_VISIBLE_DEVICES": "2,3", "HIP_VISIBLE_DEVICES": "0,1"}

    def test_named_vendors(self) -> None:
        assert visible_devices_env("ascend", [4])["ASCEND_RT_VISIBLE_DEVICES"] == "4"
        assert visible_devices_env("musa", [1]) == {"MUSA_VISIBLE_DEVICES": "1",
                                                    "MTHREADS_VISIBLE_DEVICES": "1"}
        assert visible_devices_env("kunlunxin", [0, 1]) == {"XPU_VISIBLE_DEVICES": "0,1"}
        assert "/dev/kfd" in device_files("amd") and "/dev/davinci_manager" in \
            device_files("ascend")

    def test_unknown_vendor_says_so(self) -> None:
        with pytest.raises(UnknownVendor, match="acme"):
            visible_devices_env("acme", [0])
