"""Model paths that would open the host are refused before anything is rendered."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from bridge.errors import ValidationFailed
from bridge.placement.model_paths import check_model_path


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, ...]:
    root = tmp_path / "models"
    (root / "qwen").mkdir(parents=True)
    (root / "qwen" / "config.json").write_text("{}")
    return (root,)


def test_inside_a_root_is_fine(roots) -> None:
    check_model_path(str(roots[0] / "qwen"), roots)
    check_model_path(str(roots[0] / "not-here-yet" / "m.gguf"), roots)  # exists on nodes only


@pytest.mark.parametrize("path", ["/etc/passwd", "/var/run/docker.sock", "/", "/models2/x",
                                  "relative/x", "/dev/nvidia0", "/proc/1/root"])
def test_outside_roots(roots, path) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_model_path(path, (*roots, Path("/models")))
    assert info.value.details["field"] == "model_path"


def test_dotdot_escape(roots) -> None:
    with pytest.raises(ValidationFailed, match=r"'\.\.'"):
        check_model_path(str(roots[0]) + "/../../etc", roots)


def test_symlink_leaving_the_root(roots, tmp_path) -> None:
    (roots[0] / "evil").symlink_to("/etc")
    with pytest.raises(ValidationFailed, match="symlink"):
        check_model_path(str(roots[0] / "evil"), roots)


def test_socket_and_fifo(roots) -> None:
    sock_path = roots[0] / "docker.sock"
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(sock_path))
        with pytest.raises(ValidationFailed, match="socket"):
            check_model_path(str(sock_path), roots)
    fifo = roots[0] / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValidationFailed, match="pipe"):
        check_model_path(str(fifo), roots)


def test_broken_and_looping_symlinks(roots) -> None:
    (roots[0] / "dangling").symlink_to(roots[0] / "nowhere")
    (roots[0] / "loop-a").symlink_to(roots[0] / "loop-b")
    (roots[0] / "loop-b").symlink_to(roots[0] / "loop-a")
    for name in ("dangling", "loop-a"):
        with pytest.raises(ValidationFailed, match="broken or looping"):
            check_model_path(str(roots[0] / name), roots)
