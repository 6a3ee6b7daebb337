"""A real PostgreSQL server for the tests of the PostgreSQL state
(tests/integration/test_state_postgres.py), started from Debian's binaries (`apt-get install
postgresql`, as .ci/run does) into a temporary folder, on a free loopback port, with a
password; stopped and removed after.

initdb and the server refuse to run as root: as root they run as the `postgres` user (or
`nobody`), through runuser.

    python -m tests.support.postgres_server   # starts one, prints a database's URL; Ctrl-C stops it
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "install PostgreSQL's server: apt-get install -y postgresql (.ci/run does)"
SUPERUSER = "nightjar"


def postgres_bin() -> Path | None:
    """The newest installed server's bin folder (initdb, pg_ctl), or None."""
    versions = [Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    versions.sort(
        key=lambda folder: float(folder.parent.name) if folder.parent.name[:1].isdigit() else 0
    )
    if versions:
        return versions[-1]
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """`with PostgresServer() as server:` a running server; `server.new_database()` a URL."""

    def __init__(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError(f"no PostgreSQL server found: {INSTALL_HINT}")
        self.bin = binaries
        self.password = "pw-" + secrets.token_hex(12)
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="nightjar-pg-"))
        self.data = self.root / "data"
        self._databases = 0
        # initdb refuses root: the server runs as postgres (or nobody) then
        self.user = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(name)
                    break
                except KeyError:
                    continue

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user.pw_name, "--"] if self.user else []
        completed = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, check=False, cwd=self.root
        )
        if completed.returncode:
            raise RuntimeError(
                f"{Path(command[0]).name} failed ({completed.returncode}): "
                f"{(completed.stderr or completed.stdout)[-2000:]}"
            )

    def start(self) -> PostgresServer:
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        if self.user:
            for path in (self.root, password_file):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
            "--auth=scram-sha-256", f"--pwfile={password_file}", "-E", "UTF8",
            "--locale=C.UTF-8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"nightjar_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'create database "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    # SIGTERM too (a background job ignores Ctrl-C's SIGINT): the server is stopped either way
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with PostgresServer() as server:
        print(server.new_database(), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
