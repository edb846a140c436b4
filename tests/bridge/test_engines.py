"""Engine registry: real argument spellings, vendor rules, the default chains."""

from __future__ import annotations

import json

import pytest

from bridge.domain.engines import (
    ENGINES,
    LaunchInput,
    build_launch,
    choose_engine,
    engine_from_image,
    why_engine_cannot_run,
)
from bridge.domain.models import Engine, GpuVendor

BASE = LaunchInput(model_path="/model", served_name="qwen", port=8000, gpus=1)


def test_every_engine_is_registered() -> None:
    assert set(ENGINES) == set(Engine)


class TestArguments:
    def test_vllm_uses_positional_model_and_sleep_mode(self) -> None:
        launch = build_launch(Engine.VLLM, LaunchInput("/model", "qwen", 8000, 4, sleep=True))
        assert launch.entrypoint is None  # the image's `vllm serve`
        assert launch.args[0] == "/model" and "--model" not in launch.args
        assert launch.args[launch.args.index("--tensor-parallel-size") + 1] == "4"
        assert launch.args[launch.args.index("--served-model-name") + 1] == "qwen"
        assert "--enable-sleep-mode" in launch.args
        assert launch.env == {"VLLM_SERVER_DEV_MODE": "1"}

    def test_vllm_without_sleep_has_no_dev_mode(self) -> None:
        launch = build_launch(Engine.VLLM, BASE)
        assert "--enable-sleep-mode" not in launch.args and not launch.env
        assert "--tensor-parallel-size" not in launch.args

    def test_llama_server_spelling(self) -> None:
        args = build_launch(Engine.LLAMACPP, LaunchInput("/model/m.gguf", "q", 8000, 1)).args
        assert args[args.index("-c") + 1] == "4096"
        assert "--n-ctx" not in args and "--n_ctx" not in args
        assert args[args.index("-a") + 1] == "q" and "--metrics" in args
        assert args[args.index("-ngl") + 1] == "99"
        assert not any("=" in a for a in args if a.startswith("-"))
        cpu = build_launch(Engine.LLAMACPP, LaunchInput("/m.gguf", "q", 8000, 1,
                                                        cpu_only=True)).args
        assert cpu[cpu.index("-ngl") + 1] == "0"

    def test_sglang_memory_saver_not_enable_sleep(self) -> None:
        launch = build_launch(Engine.SGLANG, LaunchInput("/model", "q", 30000, 2, sleep=True))
        assert launch.entrypoint == ("python3", "-m", "sglang.launch_server")
        assert "--enable-sleep" not in launch.args and "--enable-memory-saver" in launch.args
        assert launch.args[launch.args.index("--tp-size") + 1] == "2"
        assert launch.args[launch.args.index("--model-path") + 1] == "/model"

    def test_mindie_gets_a_rendered_config(self) -> None:
        launch = build_launch(Engine.MINDIE, LaunchInput("/model", "q", 1025, 4))
        assert launch.args == ()
        path = launch.env["MIES_CONFIG_JSON_PATH"]
        config = json.loads(launch.files[path])
        assert config["ServerConfig"]["port"] == 1025
        model = config["BackendConfig"]["ModelDeployConfig"]["ModelConfig"][0]
        assert (model["modelName"], model["modelWeightPath"], model["worldSize"]) == (
            "q", "/model", 4)
        assert config["BackendConfig"]["npuDeviceIds"] == [[0, 1, 2, 3]]

    def test_vllm_mtt_targets_musa(self) -> None:
        launch = build_launch(Engine.VLLM_MTT, BASE)
        assert launch.entrypoint == ("python", "-m", "vllm.entrypoints.openai.api_server")
        assert launch.args[launch.args.index("--device") + 1] == "musa"

    def test_transformers_serve_positional(self) -> None:
        launch = build_launch(Engine.TRANSFORMERS, BASE)
        assert launch.entrypoint == ("transformers", "serve") and launch.args[0] == "/model"

    def test_user_command_replaces_everything(self) -> None:
        launch = build_launch(Engine.VLLM, BASE, command="python -m my.server --x 'a b'")
        assert launch.entrypoint == ("python", "-m", "my.server", "--x", "a b")
        assert launch.args == ()


class TestRules:
    @pytest.mark.parametrize(("engine", "vendor", "ok"), [
        (Engine.VLLM, GpuVendor.NVIDIA, True), (Engine.VLLM, GpuVendor.ASCEND, False),
        (Engine.MINDIE, GpuVendor.ASCEND, True), (Engine.MINDIE, GpuVendor.NVIDIA, False),
        (Engine.VLLM_MTT, GpuVendor.MUSA, True), (Engine.SGLANG, GpuVendor.HYGON, True),
        (Engine.LLAMACPP, GpuVendor.BIREN, True), (Engine.TRANSFORMERS, GpuVendor.METAX, True),
    ])
    def test_vendor_support(self, engine, vendor, ok) -> None:
        reason = why_engine_cannot_run(engine, vendor, cpu_only=False)
        assert (reason is None) is ok
        if not ok:
            assert vendor.value in reason

    def test_vllm_needs_cc_75(self) -> None:
        reason = why_engine_cannot_run(Engine.VLLM, GpuVendor.NVIDIA, cpu_only=False,
                                       compute_capability=(6, 0))
        assert reason and "7.5" in reason and "6.0" in reason
        assert why_engine_cannot_run(Engine.VLLM, GpuVendor.NVIDIA, cpu_only=False,
                                     compute_capability=(7, 5)) is None
        assert why_engine_cannot_run(Engine.LLAMACPP, GpuVendor.NVIDIA, cpu_only=False,
                                     compute_capability=(6, 0)) is None

    def test_p100_only_fleet_gets_llamacpp(self) -> None:
        engine, why = choose_engine(GpuVendor.NVIDIA, [(6, 0), (6, 0)])
        assert engine is Engine.LLAMACPP and "vllm skipped" in why
        assert choose_engine(GpuVendor.NVIDIA, [(6, 0), (8, 0)])[0] is Engine.VLLM

    @pytest.mark.parametrize(("vendor", "first"), [
        (GpuVendor.NVIDIA, Engine.VLLM), (GpuVendor.AMD, Engine.VLLM),
        (GpuVendor.HYGON, Engine.VLLM), (GpuVendor.MUSA, Engine.VLLM_MTT),
        (GpuVendor.ASCEND, Engine.MINDIE), (GpuVendor.BIREN, Engine.LLAMACPP),
        (GpuVendor.CAMBRICON, Engine.TRANSFORMERS),
    ])
    def test_seed_chains(self, vendor, first) -> None:
        assert choose_engine(vendor, [])[0] is first

    @pytest.mark.parametrize(("image", "engine"), [
        ("vllm/vllm-openai:latest", Engine.VLLM), ("lmsysorg/sglang:v0.5", Engine.SGLANG),
        ("ghcr.io/ggml-org/llama.cpp:server", Engine.LLAMACPP),
        ("registry.mthreads.com/mcconline/vllm-musa:x", Engine.VLLM_MTT),
        ("ascendhub/mindie:2.0", Engine.MINDIE), ("busybox:1", None),
    ])
    def test_engine_from_image(self, image, engine) -> None:
        assert engine_from_image(image) is engine
