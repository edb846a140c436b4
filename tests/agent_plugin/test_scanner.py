"""The model scanner on generated trees: real GGUF files written with ``gguf``, HuggingFace
folders with real config files and safetensors headers, and incremental rescans."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import gguf
import pytest

from agent_plugin.errors import ModelUnreadable
from agent_plugin.models import ModelInfo, ScanResult
from agent_plugin.scanner.base import Claim, ModelFormatReader
from agent_plugin.scanner.formats import FORMATS
from agent_plugin.scanner.gguf_meta import read_gguf_header
from agent_plugin.scanner.huggingface import TOKENIZER_FILES
from agent_plugin.scanner.scanner import ModelScanner
from agent_plugin.vram import inspect_model
from tests.support.model_factory import (
    make_hf_folder,
    smollm_gguf,
    write_gguf,
    write_safetensors,
)


def reader_fields(path: Path) -> dict[str, object]:
    """Scalar metadata as the gguf package's own reader sees it."""
    out: dict[str, object] = {}
    for key, field in gguf.GGUFReader(path).fields.items():
        if key.startswith("GGUF.") or field.types[0] == gguf.GGUFValueType.ARRAY:
            continue
        out[key] = field.contents()
    return out


class TestGgufHeader:
    @pytest.mark.parametrize("endian", [gguf.GGUFEndian.LITTLE, gguf.GGUFEndian.BIG])
    def test_agrees_with_the_gguf_package(self, tmp_path: Path,
                                          endian: gguf.GGUFEndian) -> None:
        path = write_gguf(tmp_path / "m.gguf", endianess=endian, kv_heads=[2, 4])
        header = read_gguf_header(path)
        theirs = reader_fields(path)
        assert {k: header.metadata[k] for k in theirs} == theirs
        assert header.metadata["llama.attention.head_count_kv"] == [2, 4]
        assert header.metadata["tokenizer.ggml.tokens"] == 300  # skipped, length kept
        tensors = gguf.GGUFReader(path).tensors
        assert [(t.name, t.shape) for t in header.tensors] == \
            [(t.name, tuple(int(d) for d in t.shape)) for t in tensors]

    def test_agrees_on_the_real_smollm_file(self) -> None:
        path = smollm_gguf()
        header = read_gguf_header(path)
        theirs = gguf.GGUFReader(path)
        assert sum(t.elements for t in header.tensors) == \
            sum(int(t.n_elements) for t in theirs.tensors)
        for key, value in reader_fields(path).items():
            assert header.metadata[key] == value, key

    @pytest.mark.parametrize("content", [b"", b"GGUF", b"NOPE" + bytes(64),
                                         b"GGUF\x03\x00\x00\x00" + bytes(4)])
    def test_broken_files_are_unreadable(self, tmp_path: Path, content: bytes) -> None:
        (tmp_path / "bad.gguf").write_bytes(content)
        with pytest.raises(ModelUnreadable):
            read_gguf_header(tmp_path / "bad.gguf")

    def test_truncated_file(self, tmp_path: Path) -> None:
        whole = write_gguf(tmp_path / "whole.gguf").read_bytes()
        (tmp_path / "cut.gguf").write_bytes(whole[:200])
        with pytest.raises(ModelUnreadable, match="ends inside"):
            read_gguf_header(tmp_path / "cut.gguf")


class TestInspect:
    def test_real_smollm_gguf(self) -> None:
        info = inspect_model(smollm_gguf())
        assert (info.format, info.architecture, info.quantization) == ("gguf", "llama", "Q4_1")
        assert (info.context_length, info.num_layers, info.hidden_size) == (8192, 30, 576)
        assert (info.num_kv_heads, info.head_dim) == (3, 64)
        assert info.parameter_count == 134_515_008
        assert info.name == "SmolLM2-135M-Instruct.Q4_1"
        assert info.size_bytes == smollm_gguf().stat().st_size
        # 94 MiB weights + 90 MiB KV (2*30*3*64*4096*2 B) + 256 MiB llama.cpp overhead
        assert info.estimated_vram_mb == 94 + 90 + 256
        assert "4096 tokens" in info.vram_explanation

    def test_split_gguf_is_one_model(self, tmp_path: Path) -> None:
        write_gguf(tmp_path / "big.gguf", split_max_tensors=2, layers=3)
        shards = sorted(p.name for p in tmp_path.iterdir())
        assert len(shards) > 1 and shards[0].endswith(f"-00001-of-{len(shards):05d}.gguf")
        info = inspect_model(tmp_path / shards[-1])  # any shard names the model
        assert info.name == "big" and info.path.endswith(shards[0])
        assert info.size_bytes == sum((tmp_path / s).stat().st_size for s in shards)
        (tmp_path / shards[-1]).unlink()
        with pytest.raises(ModelUnreadable, match="only"):
            inspect_model(tmp_path / shards[0])

    def test_llama3_folder(self, tmp_path: Path) -> None:
        folder = make_hf_folder(tmp_path, "Meta-Llama-3-8B-Instruct",
                                "llama-3-8b-instruct.config.json", shards=4)
        info = inspect_model(folder)
        assert info.parameter_count == 8_030_261_248
        assert (info.architecture, info.quantization) == ("LlamaForCausalLM", "bf16")
        assert (info.context_length, info.num_layers, info.num_kv_heads, info.head_dim) == \
            (8192, 32, 8, 128)
        assert info.size_bytes > 8_030_261_248 * 2  # the weights plus config and tokenizer

    def test_quantised_folder(self, tmp_path: Path) -> None:
        folder = make_hf_folder(tmp_path, "qwen-awq", "qwen2.5-7b-instruct-awq.config.json",
                                tensors={"model.embed_tokens.weight": ("F16", (152064, 3584)),
                                         "model.layers.0.self_attn.q_proj.qweight":
                                             ("I32", (3584, 448))})
        info = inspect_model(folder)
        assert info.quantization == "awq-4bit"
        assert (info.num_kv_heads, info.head_dim, info.context_length) == (4, 128, 32768)

    def test_multimodal_without_head_counts(self, tmp_path: Path) -> None:
        folder = make_hf_folder(tmp_path, "gemma-3-4b-it", "gemma-3-4b-it.config.json",
                                tensors={"language_model.model.embed_tokens.weight":
                                         ("BF16", (262208, 2560))})
        info = inspect_model(folder)
        assert (info.architecture, info.num_layers, info.hidden_size) == \
            ("Gemma3ForConditionalGeneration", 34, 2560)
        assert info.num_kv_heads is None and info.head_dim is None
        assert "KV cache not counted" in info.vram_explanation

    def test_bin_weights_estimate_parameters(self, tmp_path: Path) -> None:
        folder = make_hf_folder(tmp_path, "old", "smollm2-135m-instruct.config.json",
                                weights="bin")
        info = inspect_model(folder)
        assert info.parameter_count == 1024 * 1024  # 2 MiB of bf16

    def test_both_weight_formats_count_safetensors_only(self, tmp_path: Path) -> None:
        folder = make_hf_folder(tmp_path, "both", "smollm2-135m-instruct.config.json")
        with (folder / "pytorch_model.bin").open("wb") as fh:
            fh.truncate(10**9)
        info = inspect_model(folder)
        assert info.size_bytes < 10**9

    def test_reasons(self, tmp_path: Path) -> None:
        folder = make_hf_folder(tmp_path, "notok", "smollm2-135m-instruct.config.json",
                                tokenizer=False)
        with pytest.raises(ModelUnreadable, match="no tokenizer"):
            inspect_model(folder)
        bare = make_hf_folder(tmp_path, "noweights", "smollm2-135m-instruct.config.json",
                              weights="none")
        with pytest.raises(ModelUnreadable, match="no weights"):
            inspect_model(bare)
        (tmp_path / "notes.txt").write_text("hello")
        with pytest.raises(ModelUnreadable, match="neither"):
            inspect_model(tmp_path / "notes.txt")
        with pytest.raises(ModelUnreadable, match="does not exist"):
            inspect_model(tmp_path / "missing")


class CountingReader:
    """A registered format that counts how often models are read (a real extension of the
    format registry, delegating to the real reader)."""

    def __init__(self, inner: ModelFormatReader) -> None:
        self.inner = inner
        self.format = inner.format
        self.reads = 0

    def claims(self, folder: Path, files: Sequence[str]) -> list[Claim]:
        return self.inner.claims(folder, files)

    def inspect(self, claim: Claim) -> ModelInfo:
        self.reads += 1
        return self.inner.inspect(claim)


def counting_formats() -> dict[str, CountingReader]:
    return {name: CountingReader(reader) for name, reader in FORMATS.items()}


def build_tree(root: Path, *, ggufs: int = 5, hf: int = 2, junk_dirs: int = 0,
               junk_per_dir: int = 0) -> None:
    template = write_gguf(root / "template.gguf")
    for i in range(1, ggufs):
        sub = root / f"team{i % 3}" / f"gguf{i}"
        sub.mkdir(parents=True, exist_ok=True)
        shutil.copy(template, sub / f"model-{i}.gguf")
    for i in range(hf):
        make_hf_folder(root / "hf", f"smol-{i}", "smollm2-135m-instruct.config.json",
                       tensors={"model.embed_tokens.weight": ("BF16", (49152, 576))})
    for d in range(junk_dirs):
        folder = root / "datasets" / f"part{d:03d}"
        folder.mkdir(parents=True)
        for f in range(junk_per_dir):
            (folder / f"sample{f:04d}.jsonl").write_text("{}\n")


class TestScanner:
    def test_first_scan_adds_everything(self, tmp_path: Path) -> None:
        build_tree(tmp_path)
        result = ModelScanner([tmp_path]).scan_sync()
        assert len(result.added) == 7 and result.changed == () and result.removed == ()
        assert {m.format for m in result.models} == {"gguf", "huggingface"}
        assert all(m.estimated_vram_mb for m in result.models)
        assert ScanResult.from_json(json.loads(json.dumps(result.to_json()))) == result

    def test_rescan_reports_only_changes(self, tmp_path: Path) -> None:
        build_tree(tmp_path)
        formats = counting_formats()
        scanner = ModelScanner([tmp_path], formats=formats)
        first = scanner.scan_sync()
        reads = sum(f.reads for f in formats.values())
        again = scanner.scan_sync()
        assert not again.has_changes and again.models == first.models
        assert sum(f.reads for f in formats.values()) == reads  # nothing was read again

        changed = tmp_path / "team1" / "gguf1" / "model-1.gguf"
        write_gguf(changed, context=16384)
        (tmp_path / "team2" / "gguf2" / "model-2.gguf").unlink()
        write_gguf(tmp_path / "new.gguf", arch="qwen2")
        shutil.rmtree(tmp_path / "hf" / "smol-1")
        result = scanner.scan_sync()
        assert [m.path for m in result.changed] == [str(changed)]
        assert result.changed[0].context_length == 16384
        assert [m.architecture for m in result.added] == ["qwen2"]
        assert sorted(result.removed) == sorted([str(tmp_path / "team2/gguf2/model-2.gguf"),
                                                 str(tmp_path / "hf" / "smol-1")])
        assert sum(f.reads for f in formats.values()) == reads + 2
        assert len(result.models) == 6

    def test_touching_a_file_is_a_change(self, tmp_path: Path) -> None:
        build_tree(tmp_path, ggufs=2, hf=1)
        scanner = ModelScanner([tmp_path])
        scanner.scan_sync()
        config = tmp_path / "hf" / "smol-0" / "config.json"
        os.utime(config, ns=(time.time_ns(), config.stat().st_mtime_ns + 1_000_000_000))
        result = scanner.scan_sync()
        assert [m.name for m in result.changed] == ["smol-0"]

    def test_index_survives_a_restart(self, tmp_path: Path) -> None:
        root, index = tmp_path / "models", tmp_path / "state" / "index.json"
        root.mkdir()
        build_tree(root)
        ModelScanner([root], index_path=index).scan_sync()
        formats = counting_formats()
        restarted = ModelScanner([root], index_path=index, formats=formats)
        result = restarted.scan_sync()
        assert not result.has_changes and len(result.models) == 7
        assert sum(f.reads for f in formats.values()) == 0
        # another context cap means other estimates: everything is described again
        recapped = ModelScanner([root], index_path=index, context_cap=512).scan_sync()
        assert {m.estimated_vram_mb for m in recapped.models} != \
            {m.estimated_vram_mb for m in result.models}
        index.write_text("{not json")
        assert len(ModelScanner([root], index_path=index).scan_sync().added) == 7

    def test_unchanged_tree_of_ten_thousand_files_rescans_fast(self, tmp_path: Path) -> None:
        build_tree(tmp_path, ggufs=200, hf=30, junk_dirs=100, junk_per_dir=100)
        files = sum(len(f) for _, _, f in os.walk(tmp_path))
        assert files >= 10_000
        scanner = ModelScanner([tmp_path], index_path=tmp_path.parent / "idx.json")
        assert len(scanner.scan_sync().added) == 230
        started = time.perf_counter()
        result = scanner.scan_sync()
        elapsed = time.perf_counter() - started
        assert not result.has_changes and len(result.models) == 230
        assert elapsed < 0.5, f"rescan of {files} files took {elapsed:.3f} s"

    def test_skipped_paths_carry_reasons(self, tmp_path: Path) -> None:
        make_hf_folder(tmp_path, "half-downloaded", "smollm2-135m-instruct.config.json",
                       weights="none")
        (tmp_path / "broken.gguf").write_bytes(b"GGUF" + bytes(10))
        os.symlink(tmp_path, tmp_path / "loop")  # must not walk forever
        scanner = ModelScanner([tmp_path, tmp_path / "nowhere"])
        result = scanner.scan_sync()
        assert result.models == ()
        assert "no weights" in scanner.skipped[str(tmp_path / "half-downloaded")]
        assert "GGUF" in scanner.skipped[str(tmp_path / "broken.gguf")]
        assert "does not exist" in scanner.skipped[str(tmp_path / "nowhere")]

    def test_skipped_models_are_logged_once_with_the_reason(
            self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        make_hf_folder(tmp_path, "no-tokenizer", "smollm2-135m-instruct.config.json")
        for name in TOKENIZER_FILES:
            (tmp_path / "no-tokenizer" / name).unlink(missing_ok=True)
        (tmp_path / "corrupt.gguf").write_bytes(b"GGUF" + b"\xff" * 64)
        scanner = ModelScanner([tmp_path])
        with caplog.at_level(logging.WARNING, logger="agent_plugin.scanner.scanner"):
            assert scanner.scan_sync().models == ()
            scanner.scan_sync()  # unchanged: nothing said again
        said = {r.path: r.reason for r in caplog.records  # type: ignore[attr-defined]
                if r.getMessage() == "model skipped"}
        assert len([r for r in caplog.records if r.getMessage() == "model skipped"]) == 2
        assert "no tokenizer files" in said[str(tmp_path / "no-tokenizer")]
        assert said[str(tmp_path / "corrupt.gguf")] == scanner.skipped[
            str(tmp_path / "corrupt.gguf")]

    def test_a_model_that_breaks_is_removed(self, tmp_path: Path) -> None:
        write_gguf(tmp_path / "m.gguf")
        scanner = ModelScanner([tmp_path])
        scanner.scan_sync()
        (tmp_path / "m.gguf").write_bytes(b"GGUF broken now")
        result = scanner.scan_sync()
        assert result.removed == (str(tmp_path / "m.gguf"),)
        assert str(tmp_path / "m.gguf") in scanner.skipped

    def test_symlinked_real_model(self, tmp_path: Path) -> None:
        os.symlink(smollm_gguf(), tmp_path / "smol.gguf")
        (model,) = ModelScanner([tmp_path]).scan_sync().models
        assert model.quantization == "Q4_1" and model.size_bytes > 90_000_000

    async def test_async_scans_do_not_overlap(self, tmp_path: Path) -> None:
        build_tree(tmp_path, ggufs=3, hf=1)
        scanner = ModelScanner([tmp_path])
        first, second = await asyncio.gather(scanner.scan(), scanner.scan())
        assert len(first.added) == 4 and not second.has_changes
        assert scanner.models == second.models


def test_safetensors_writer_makes_valid_headers(tmp_path: Path) -> None:
    size = write_safetensors(tmp_path / "x.safetensors", {"w": ("F32", (3, 5))})
    raw = (tmp_path / "x.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    assert header["w"]["data_offsets"] == [0, 60] and size == 8 + header_len + 60
