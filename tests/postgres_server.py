"""A private PostgreSQL server for tests: Debian's `initdb` and `pg_ctl` (package `postgresql`)
in a temporary folder, listening only on a Unix socket in that folder, stopped and removed at
the end. PostgreSQL refuses to run as root: when the tests run as root (CI does), the server
runs as `nobody`. A missing PostgreSQL is an error naming the package, never a skip."""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def postgres_bin() -> Path:
    """The newest installed PostgreSQL's bin folder (Debian 12 has 15, Debian 13 has 17)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise RuntimeError("PostgreSQL's initdb not found: install Debian's 'postgresql' package "
                       "(./bootstrap.sh test installs it)")


class PostgresServer:
    """`with PostgresServer() as pg:` a running server; `pg.new_database()` an empty database's
    URL (postgresql://indical@/NAME?host=SOCKET_DIR)."""

    user = "indical"

    def __init__(self) -> None:
        self.bin = postgres_bin()
        root = os.geteuid() == 0
        # as root the server runs as nobody, who must reach the folder: /tmp, not a $TMPDIR
        # that may sit in root's home
        self.dir = Path(tempfile.mkdtemp(prefix="indical-pg-", dir="/tmp" if root else None))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self._names = itertools.count(1)
        self._as: dict = {}
        if root:
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            self._as = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}

    def _run(self, *args: str) -> None:
        done = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                              cwd=self.dir, timeout=120, **self._as)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} failed ({done.returncode}): "
                               f"{done.stderr.strip()}\n{log}")

    def start(self) -> "PostgresServer":
        self._run(self.bin / "initdb", "-D", self.data, "-U", self.user, "--auth=trust",
                  "--no-locale", "-E", "UTF8", "--no-sync")
        # throw-away data: no fsync; a Unix socket in the private folder, no TCP at all
        options = (f"-k {self.dir} -c listen_addresses='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60 "
                   "-c shared_buffers=16MB")
        self._run(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w",
                  "-t", "60", "start")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@/{database}?host={self.dir}"

    def new_database(self) -> str:
        """A new empty database's URL."""
        import psycopg
        name = f"library_{next(self._names)}"
        with psycopg.connect(f"host={self.dir} user={self.user} dbname=postgres",
                             autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return self.url(name)
