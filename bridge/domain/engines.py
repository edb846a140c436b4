"""The engine registry: which engines exist, where they run, and how each is started.

One entry per engine (a small spec plus an argument builder), one chain per GPU vendor.
Arguments are spelled the way each engine's *real* server parses them, which is not always
the seed's example (see docs/engines.md):

* vLLM (``vllm serve``): model positional; sleep needs ``--enable-sleep-mode`` and
  ``VLLM_SERVER_DEV_MODE=1``.
* SGLang: ``--model-path``, ``--tp-size``; sleep is ``--enable-memory-saver``.
* llama.cpp's ``llama-server``: ``-c``/``--ctx-size`` (``--n-ctx`` is rejected), ``-a`` alias,
  ``--metrics``; no ``--flag=value`` forms.
* MindIE takes no model flags: it reads a rendered config.json (see ``mindie_config``).
* vLLM-MTT: ``python -m vllm.entrypoints.openai.api_server --device musa``.
* ``transformers serve MODEL``.

A user's own ``command`` replaces the built argument list entirely.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.domain.models import Engine, GpuVendor

# Checked in order: the more specific names first ("vllm-mtt" before "vllm").
_IMAGE_HINTS: tuple[tuple[str, Engine], ...] = (
    ("mtt", Engine.VLLM_MTT),
    ("musa", Engine.VLLM_MTT),
    ("mindie", Engine.MINDIE),
    ("sglang", Engine.SGLANG),
    ("vllm", Engine.VLLM),
    ("llama.cpp", Engine.LLAMACPP),
    ("llama-cpp", Engine.LLAMACPP),
    ("llamacpp", Engine.LLAMACPP),
    ("transformers", Engine.TRANSFORMERS),
)


def engine_from_image(image: str) -> Engine | None:
    """The engine an image name announces (``vllm/vllm-openai:latest`` -> vllm), if any."""
    repo = image.split("@", 1)[0].lower()
    for hint, engine in _IMAGE_HINTS:
        if hint in repo:
            return engine
    return None


@dataclass(frozen=True, slots=True)
class LaunchInput:
    """What an argument builder needs to know about one task."""

    model_path: str  # where the model is *inside* the container
    served_name: str
    port: int
    gpus: int  # GPUs of this task (tensor-parallel size)
    context_length: int | None = None
    sleep: bool = False  # start with the engine's sleep/wake API enabled
    cpu_only: bool = False


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start an engine: entrypoint (None = the image's own), args, env, files."""

    entrypoint: tuple[str, ...] | None
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    # path inside the container -> content (rendered config files, e.g. MindIE's)
    files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EngineSpec:
    engine: Engine
    vendors: frozenset[GpuVendor]
    cpu_capable: bool
    default_image: str
    build: Callable[[LaunchInput], Launch]
    min_compute_capability: tuple[int, int] | None = None  # NVIDIA only
    sleep_api: str | None = None  # "vllm" | "sglang" | None (pause only)
    health_path: str = "/health"
    metrics: bool = True


def _vllm(i: LaunchInput) -> Launch:
    args = [i.model_path, "--host", "0.0.0.0", "--port", str(i.port),
            "--served-model-name", i.served_name]
    if i.gpus > 1:
        args += ["--tensor-parallel-size", str(i.gpus)]
    if i.context_length:
        args += ["--max-model-len", str(i.context_length)]
    env: dict[str, str] = {}
    if i.sleep:
        args.append("--enable-sleep-mode")
        env["VLLM_SERVER_DEV_MODE"] = "1"
    return Launch(entrypoint=None, args=tuple(args), env=env)


def _sglang(i: LaunchInput) -> Launch:
    args = ["--model-path", i.model_path, "--host", "0.0.0.0", "--port", str(i.port),
            "--served-model-name", i.served_name, "--enable-metrics"]
    if i.gpus > 1:
        args += ["--tp-size", str(i.gpus)]
    if i.context_length:
        args += ["--context-length", str(i.context_length)]
    if i.sleep:
        args.append("--enable-memory-saver")
    return Launch(entrypoint=("python3", "-m", "sglang.launch_server"), args=tuple(args))


def _llamacpp(i: LaunchInput) -> Launch:
    args = ["-m", i.model_path, "--host", "0.0.0.0", "--port", str(i.port),
            "-a", i.served_name, "-ngl", "0" if i.cpu_only else "99",
            "-c", str(i.context_length or 4096), "--metrics"]
    return Launch(entrypoint=None, args=tuple(args))


MINDIE_CONFIG_PATH = "/local/mindie-config.json"


def mindie_config(i: LaunchInput) -> str:
    """MindIE reads its whole setup from config.json; only the fields we own are set."""
    config = {
        "ServerConfig": {"ipAddress": "0.0.0.0", "port": i.port, "httpsEnabled": False},
        "BackendConfig": {
            "npuDeviceIds": [list(range(i.gpus))],
            "ModelDeployConfig": {
                "maxSeqLen": i.context_length or 4096,
                "ModelConfig": [{"modelName": i.served_name, "modelWeightPath": i.model_path,
                                 "worldSize": i.gpus}],
            },
        },
    }
    return json.dumps(config, indent=2, sort_keys=True)


def _mindie(i: LaunchInput) -> Launch:
    return Launch(
        entrypoint=("/usr/local/Ascend/mindie/latest/mindie-service/bin/mindieservice_daemon",),
        args=(), env={"MIES_CONFIG_JSON_PATH": MINDIE_CONFIG_PATH},
        files={MINDIE_CONFIG_PATH: mindie_config(i)},
    )


def _vllm_mtt(i: LaunchInput) -> Launch:
    args = ["--model", i.model_path, "--device", "musa", "--host", "0.0.0.0",
            "--port", str(i.port), "--served-model-name", i.served_name]
    if i.gpus > 1:
        args += ["--tensor-parallel-size", str(i.gpus)]
    return Launch(entrypoint=("python", "-m", "vllm.entrypoints.openai.api_server"),
                  args=tuple(args))


def _transformers(i: LaunchInput) -> Launch:
    return Launch(entrypoint=("transformers", "serve"),
                  args=(i.model_path, "--host", "0.0.0.0", "--port", str(i.port)))


_GPU3 = frozenset({GpuVendor.NVIDIA, GpuVendor.AMD, GpuVendor.HYGON})

ENGINES: dict[Engine, EngineSpec] = {
    Engine.VLLM: EngineSpec(Engine.VLLM, _GPU3, False, "vllm/vllm-openai:latest", _vllm,
                            min_compute_capability=(7, 5), sleep_api="vllm"),
    # SGLang refuses GPUs below sm75 and its current kernels need sm80 (sm75 was deprecated
    # in 0.5; T4s crash with "no kernel image"), so it asks for 8.0.
    Engine.SGLANG: EngineSpec(Engine.SGLANG, _GPU3, False, "lmsysorg/sglang:latest", _sglang,
                              min_compute_capability=(8, 0), sleep_api="sglang"),
    Engine.LLAMACPP: EngineSpec(Engine.LLAMACPP, _GPU3 | {GpuVendor.BIREN}, True,
                                "ghcr.io/ggml-org/llama.cpp:server", _llamacpp),
    Engine.MINDIE: EngineSpec(Engine.MINDIE, frozenset({GpuVendor.ASCEND}), False,
                              "ascendhub.huawei.com/public-ascendhub/mindie:latest", _mindie,
                              metrics=False),
    Engine.VLLM_MTT: EngineSpec(Engine.VLLM_MTT, frozenset({GpuVendor.MUSA}), False,
                                "registry.mthreads.com/mcconline/vllm-musa:latest", _vllm_mtt,
                                metrics=False),
    Engine.TRANSFORMERS: EngineSpec(Engine.TRANSFORMERS, frozenset(GpuVendor), True,
                                    "huggingface/transformers-pytorch-gpu:latest",
                                    _transformers, metrics=False),
}

# The seed's default chain per GPU type; vendors the seed is silent on fall back to
# transformers, the one engine that runs on any accelerator torch supports.
DEFAULT_CHAIN: dict[GpuVendor, tuple[Engine, ...]] = {
    GpuVendor.NVIDIA: (Engine.VLLM, Engine.SGLANG, Engine.LLAMACPP),
    GpuVendor.AMD: (Engine.VLLM, Engine.LLAMACPP),
    GpuVendor.HYGON: (Engine.VLLM, Engine.LLAMACPP),
    GpuVendor.MUSA: (Engine.VLLM_MTT,),
    GpuVendor.ASCEND: (Engine.MINDIE,),
    GpuVendor.BIREN: (Engine.LLAMACPP,),
}


def chain_for(vendor: GpuVendor) -> tuple[Engine, ...]:
    return DEFAULT_CHAIN.get(vendor, (Engine.TRANSFORMERS,))


def parse_cc(value: str | None) -> tuple[int, int] | None:
    """``"8.0"`` -> (8, 0); None or garbage -> None."""
    if not value:
        return None
    major, _, minor = value.strip().partition(".")
    if not major.isdigit() or (minor and not minor.isdigit()):
        return None
    return int(major), int(minor or 0)


def why_engine_cannot_run(
    engine: Engine, vendor: GpuVendor | None, *, cpu_only: bool,
    compute_capability: tuple[int, int] | None = None,
) -> str | None:
    """None when ``engine`` can serve on this kind of device; otherwise the reason."""
    spec = ENGINES[engine]
    if cpu_only:
        return None if spec.cpu_capable else f"{engine.value} cannot run without a GPU"
    if vendor is not None and vendor not in spec.vendors:
        runs_on = ", ".join(sorted(v.value for v in spec.vendors))
        return f"{engine.value} does not run on {vendor.value} GPUs (it runs on {runs_on})"
    need = spec.min_compute_capability
    if (vendor is GpuVendor.NVIDIA and need and compute_capability
            and compute_capability < need):
        have = ".".join(map(str, compute_capability))
        return (f"{engine.value} needs compute capability >= {need[0]}.{need[1]}; "
                f"this GPU has {have}")
    return None


def choose_engine(
    vendor: GpuVendor, capabilities: list[tuple[int, int] | None]
) -> tuple[Engine, str]:
    """The first engine of the vendor's chain that some node can run, and why it was chosen.

    ``capabilities`` lists the compute capability of each candidate node (None = unknown,
    treated as able). With no candidates the chain's first engine is kept, so placement can
    explain what is missing.
    """
    chain = chain_for(vendor)
    skipped: list[str] = []
    for engine in chain:
        if not capabilities:
            return engine, f"{engine.value}: first of the {vendor.value} chain"
        if any(why_engine_cannot_run(engine, vendor, cpu_only=False, compute_capability=cc)
               is None for cc in capabilities):
            note = f" ({'; '.join(skipped)})" if skipped else ""
            return engine, f"{engine.value}: first of the {vendor.value} chain that fits{note}"
        skipped.append(f"{engine.value} skipped: no candidate GPU meets its compute capability")
    return chain[-1], f"{chain[-1].value}: last of the {vendor.value} chain; " + "; ".join(skipped)


def build_launch(engine: Engine, i: LaunchInput, command: str | None = None) -> Launch:
    """The engine's launch line, or the user's own command in its place."""
    if command:
        words = shlex.split(command)
        return Launch(entrypoint=tuple(words), args=())
    return ENGINES[engine].build(i)


# --------------------------------------------------------------------------- local processes

LOCAL_HEALTH_PATH = {"llama_cpp.server": "/v1/models"}  # llama-cpp-python has no /health


@dataclass(frozen=True, slots=True)
class LocalLaunch:
    argv: tuple[str, ...]
    env: dict[str, str]
    health_path: str


class NotRunnableHere(ValueError):
    """The engine cannot run as a process on this machine; the message says why."""


def local_launch(
    engine: Engine, i: LaunchInput, *, python: str,
    which: Callable[[str], str | None], importable: Callable[[str], bool],
) -> LocalLaunch:
    """The engine as a process on this machine (the one-machine default), loopback only.

    llama.cpp prefers the ``llama-server`` binary and falls back to llama-cpp-python's
    server, whose flags are spelled with underscores. MindIE and vLLM-MTT ship as vendor
    containers only.
    """
    host = "127.0.0.1"
    if engine is Engine.LLAMACPP:
        if server := which("llama-server"):
            args = list(_llamacpp(i).args)
            args[args.index("0.0.0.0")] = host
            return LocalLaunch((server, *args), {}, "/health")
        if importable("llama_cpp.server"):
            argv = [python, "-m", "llama_cpp.server", "--model", i.model_path, "--host", host,
                    "--port", str(i.port), "--model_alias", i.served_name,
                    "--n_ctx", str(i.context_length or 4096),
                    "--n_gpu_layers", "0" if i.cpu_only else "-1"]
            return LocalLaunch(tuple(argv), {}, LOCAL_HEALTH_PATH["llama_cpp.server"])
        raise NotRunnableHere("llama.cpp is not installed here: neither llama-server nor "
                              "llama-cpp-python (pip install 'llama-cpp-python[server]')")
    if engine is Engine.VLLM and importable("vllm"):
        launch = _vllm(i)
        args = list(launch.args)
        args[args.index("0.0.0.0")] = host
        return LocalLaunch((python, "-m", "vllm.entrypoints.openai.api_server", "--model",
                            *args), dict(launch.env), "/health")
    if engine is Engine.SGLANG and importable("sglang"):
        args = list(_sglang(i).args)
        args[args.index("0.0.0.0")] = host
        return LocalLaunch((python, "-m", "sglang.launch_server", *args), {}, "/health")
    if engine is Engine.TRANSFORMERS and (cli := which("transformers")):
        return LocalLaunch((cli, "serve", i.model_path, "--host", host, "--port", str(i.port)),
                           {}, "/health")
    raise NotRunnableHere(f"{engine.value} is not installed on this machine")
