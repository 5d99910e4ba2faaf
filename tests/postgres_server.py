"""A private PostgreSQL cluster on loopback for the tests: ``initdb`` into a temporary folder,
``pg_ctl`` on a free port, stopped and deleted at the end. As root the binaries run as the
``postgres`` OS user (initdb refuses root). ``.ci/run`` installs PostgreSQL (apt-get install
postgresql); where it is missing the tests that need it skip, unless CI requires them."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def _pg_binary(name: str) -> str | None:
    """Debian keeps initdb/pg_ctl in /usr/lib/postgresql/VERSION/bin, off PATH."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    return str(candidates[-1]) if candidates else None


def _postgres_user() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


INITDB = _pg_binary("initdb")
PG_CTL = _pg_binary("pg_ctl")
AVAILABLE = bool(INITDB and PG_CTL and (os.geteuid() != 0 or _postgres_user()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres() -> dict:
    """Run a PostgreSQL binary as the ``postgres`` OS user when we are root."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


class PostgresCluster:
    """One cluster with database ``database``; with ``password`` the superuser ``postgres``
    must give it (scram-sha-256), so a test can prove which credentials reached the server."""

    def __init__(self, database: str = "airflow", password: str | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mlpipe-pg-"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.sock.mkdir()
        if os.geteuid() == 0:
            for path in (self.root, self.sock):
                shutil.chown(path, "postgres", "postgres")
        self.port = _free_port()
        self.database = database
        self.password = password
        auth = f"postgres:{password}@" if password else "postgres@"
        self.url = f"postgresql+psycopg2://{auth}127.0.0.1:{self.port}/{database}"
        self.started = False

    def _run(self, *args: str) -> None:
        result = subprocess.run(  # noqa: S603
            args, cwd=self.root, capture_output=True, text=True, timeout=60, **_as_postgres()
        )
        if result.returncode:
            log = self.root / "postgres.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stdout}{result.stderr}{tail}")

    def start(self) -> None:
        auth = ["-A", "trust"]
        if self.password:
            pwfile = self.root / "pwfile"
            pwfile.write_text(self.password + "\n")
            if os.geteuid() == 0:
                shutil.chown(pwfile, "postgres", "postgres")
            auth = ["-A", "scram-sha-256", "--pwfile", str(pwfile)]
        self._run(INITDB, "-D", str(self.data), "-U", "postgres", *auth, "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.sock} -h 127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            PG_CTL,
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "postgres.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self.started = True
        with self.connect("postgres") as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{self.database}"')

    def connect(self, database: str | None = None):
        """A psycopg2 connection as the superuser (close it, or use it in ``with``)."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=self.password,
            dbname=database or self.database,
        )
        return _Closing(conn)

    def stop(self) -> None:
        if self.started:
            self._run(PG_CTL, "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


class _Closing:
    """psycopg2's ``with conn`` only ends a transaction; this also closes the connection."""

    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        if exc[0] is None and not self.conn.autocommit:
            self.conn.commit()
        self.conn.close()
