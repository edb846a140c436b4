"""The embedded PostgreSQL lets no other local user in: its socket folder is private (0700,
owned by the server), every connection needs the password, and starting it changes the mode
of no folder but its own. Checked as a second, unprivileged user (``nobody``)."""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

from bridge.storage.embedded import EmbeddedPostgres

pytestmark = pytest.mark.slow


def _other_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to act as a second user (setuid); run the suite as root")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "nobody"], check=True)
        return pwd.getpwnam("nobody")


def _connect_as(user: pwd.struct_passwd, socket_path: Path) -> int:
    """Connect to the server's socket as ``user`` from a forked child (no program to run,
    so nothing the other user must be able to read); the child's errno, 0 if it got in."""
    pid = os.fork()
    if pid == 0:  # the child: drop to the other user, try, report through the exit code
        code = 0
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(socket_path))
        except OSError as exc:
            code = exc.errno or 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _modes(path: Path, top: Path) -> dict[Path, int]:
    """Modes from ``path`` up to ``top``: the folders this test made. (Above them are
    shared ones, which other test runs on this machine may change meanwhile.)"""
    chain = [path, *path.parents]
    return {p: stat.S_IMODE(p.stat().st_mode) for p in chain[:chain.index(top) + 1]}


def _socket_of(url: str) -> Path:
    return Path(parse_qs(urlsplit(url).query)["host"][0]) / ".s.PGSQL.5432"


@pytest.mark.parametrize("layout", ["private-home", "long-path"])
def test_other_local_user_cannot_reach_the_database(tmp_path: Path, layout: str) -> None:
    other = _other_user()
    if layout == "private-home":  # like /root: a 0700 home the server user cannot pass
        home = tmp_path / "home"
        home.mkdir(mode=0o700)
    else:  # a path too long for a socket: the socket goes to a short folder of its own
        base = Path(tempfile.mkdtemp(prefix="hf-long-"))  # pytest's own folders are 0700
        home = base / ("h" * 60) / ("o" * 60) / "home"
        home.mkdir(parents=True)
        for folder in (base, home.parent.parent, home.parent, home):
            folder.chmod(0o755)
    top = tmp_path if layout == "private-home" else base
    before = _modes(home, top)
    server = EmbeddedPostgres(home / "pgdata")
    try:
        url = server.start()
        sock = _socket_of(url)
        assert sock.exists()
        if layout == "long-path":
            assert sock.parent.name.startswith("heteroflow-pg-"), sock
        else:  # the data moved where the server user can reach it, the home untouched
            assert (home / "pgdata").is_symlink()
        folder = sock.parent.stat()
        assert stat.S_IMODE(folder.st_mode) == 0o700 and folder.st_uid != other.pw_uid
        # the second user cannot even reach the socket
        assert _connect_as(other, sock) in (errno.EACCES, errno.EPERM, errno.ENOENT)
        # and whoever reaches it (root passes any mode) still needs the password
        without = url.replace(urlsplit(url).netloc.split("@")[0] + "@", "postgres@", 1)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(without, connect_timeout=10).close()
        with psycopg.connect(url, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        hba = (server._data or home / "pgdata") / "pg_hba.conf"
        assert "trust" not in hba.read_text()
        assert stat.S_IMODE((home / "pg-password").stat().st_mode) == 0o600
        assert _modes(home, top) == before  # no folder above its own changed mode
    finally:
        server.remove()
        if layout == "long-path":
            shutil.rmtree(base, ignore_errors=True)


def test_data_made_with_trust_is_secured_on_start(tmp_path: Path) -> None:
    """A data folder made before (trust for every local connection) requires the password
    from its next start on."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    server = EmbeddedPostgres(home / "pgdata")
    try:
        server.start()
        data = server._data
        assert data is not None
        server.stop()
        (data / "pg_hba.conf").write_text("local all all trust\n")  # as the wheel made it
        url = server.start()
        assert "trust" not in (data / "pg_hba.conf").read_text()
        without = url.replace(urlsplit(url).netloc.split("@")[0] + "@", "postgres@", 1)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(without, connect_timeout=10).close()
        with psycopg.connect(url, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.remove()
