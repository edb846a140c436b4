"""Is this model path safe to mount into a container?

A bind mount is a way onto the host, so a model path must lie under the cluster's model
roots, after resolving ``..`` and symlinks where the path exists here, and must not name a
device, a socket or a pipe (the Docker socket above all). Checked before anything is
rendered, so a refused path never reaches Nomad.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import NoReturn

from bridge.errors import ValidationFailed

# Never mountable, whatever the roots say.
_FORBIDDEN = ("/dev", "/proc", "/sys", "/run", "/var/run", "/etc", "/boot", "/root")


def check_model_path(path: str, roots: tuple[Path, ...]) -> None:
    pure = PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts:
        _refuse(path, "must be absolute, without '..'", roots)
    if any(_under(pure, PurePosixPath(bad)) for bad in _FORBIDDEN):
        _refuse(path, "lies in a system folder", roots)
    if not any(_under(pure, PurePosixPath(r)) for r in roots):
        _refuse(path, "is outside the model roots", roots)
    local = Path(path)
    if os.path.lexists(local):
        try:
            resolved = PurePosixPath(local.resolve(strict=True))
            mode = local.stat().st_mode
        except (OSError, RuntimeError):  # a dangling symlink, a loop, no permission
            _refuse(path, "is a broken or looping symlink", roots)
        if not any(_under(resolved, PurePosixPath(Path(r).resolve())) for r in roots):
            _refuse(path, f"resolves (through a symlink) to {resolved}, outside the model roots",
                    roots)
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
            _refuse(path, "is a device, socket or pipe, not model files", roots)


def _under(path: PurePosixPath, root: PurePosixPath) -> bool:
    return path == root or root in path.parents


def _refuse(path: str, why: str, roots: tuple[Path, ...]) -> NoReturn:
    allowed = ", ".join(str(r) for r in roots) or "(none configured)"
    raise ValidationFailed(
        f"model_path {path} {why}; models may be mounted from: {allowed} "
        "(HETEROFLOW_MODEL_ROOTS)",
        details={"field": "model_path", "model_roots": [str(r) for r in roots]},
    )
