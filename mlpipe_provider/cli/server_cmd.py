"""``mlpipe server up|down|status``: a local Airflow for a workspace, for people without one.

Airflow's api-server, scheduler, dag-processor and triggerer run detached under one supervisor
(``mlpipe_provider/cli/server_supervisor.py``) in its own process group, the API on 127.0.0.1, with AIRFLOW_HOME in the workspace's ``server/`` folder (mode 0700):
SQLite by default (``--db`` for a PostgreSQL URL), LocalExecutor with low parallelism, the
workspace's DAG folder scanned every 2 s, new DAGs unpaused. Authentication needs no person: the
simple auth manager's password file is written (0600) with a generated password before the
server starts, and the workspace config references that file, so the password never appears in
config.json, DAG files or logs. ``up`` waits until every component is healthy and login works.
``--user NAME:ROLE`` adds users of the simple auth manager's roles (viewer, user, op, admin),
each with a generated password in the same file: a viewer may read runs but not trigger them.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe_provider.airflow_api import HEALTH_COMPONENTS, AirflowClient, AirflowUnreachable
from mlpipe_provider.config import AirflowServerConfig, load_config, save_config
from mlpipe_provider.errors import MlpipeError, UserErrorException

SERVER_DIR = "server"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
USERNAME = "admin"
DEFAULT_PORT = 8080
DEFAULT_PARALLELISM = 4
#: the simple auth manager's roles, weakest first (a viewer reads; a user also triggers runs)
ROLES = ("viewer", "user", "op", "admin")


def parse_users(specs: list[str] | None) -> dict[str, str]:
    """``["NAME:ROLE", ...]`` as ``{name: role}``, checked; the admin user is always there."""
    import re

    users = {USERNAME: "admin"}
    for spec in specs or []:
        name, _, role = spec.partition(":")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}", name):
            raise UserErrorException(
                f"--user {spec!r}: the name must be 1-64 letters, digits, '_', '.', '@' or '-'"
            )
        if role not in ROLES:
            raise UserErrorException(f"--user {spec!r}: ROLE must be one of {', '.join(ROLES)}")
        if name in users and users[name] != role:
            raise UserErrorException(f"--user {spec!r}: user {name!r} is given twice")
        users[name] = role
    return users


def resolve_workspace(workspace: str | None) -> Path:
    """The workspace folder (the one holding config.json): given, or found from the cwd."""
    if workspace:
        path = Path(workspace).resolve()
        if not (path / "config.json").is_file() and (path / ".mlpipe" / "config.json").is_file():
            path = path / ".mlpipe"
        if not (path / "config.json").is_file():
            raise UserErrorException(f"{workspace}: no workspace here (no config.json)")
        return path
    from mlpipe_provider.sdk.workspace import Workspace

    return Workspace.from_config().directory


@dataclass
class LocalServer:
    """The files of a workspace's local server (``<workspace>/server/``)."""

    workspace_dir: Path

    @property
    def home(self) -> Path:
        return self.workspace_dir / SERVER_DIR

    @property
    def passwords_file(self) -> Path:
        return self.home / PASSWORDS_FILE

    @property
    def pid_file(self) -> Path:
        return self.home / "server.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "server.log"

    @property
    def settings_file(self) -> Path:
        return self.home / "server.json"

    @property
    def dags_dir(self) -> Path:
        return self.workspace_dir / "dags"

    def settings(self) -> dict[str, Any]:
        try:
            return json.loads(self.settings_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def url(self, port: int) -> str:
        return f"http://127.0.0.1:{port}"

    def config_entry(self, port: int) -> AirflowServerConfig:
        return AirflowServerConfig(
            url=self.url(port),
            username=USERNAME,
            password_file=f"{SERVER_DIR}/{PASSWORDS_FILE}",
        )

    def is_ours(self, entry: AirflowServerConfig | None) -> bool:
        """Whether a config entry is (or was) this workspace's local server."""
        return entry is not None and entry.password_file == f"{SERVER_DIR}/{PASSWORDS_FILE}"

    # --- process -------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The server's process (group) id, when that process is alive and is Airflow."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        _reap(pid)
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):
                return None
            return pid
        return pid if b"mlpipe_provider.cli.server_supervisor" in cmdline else None

    def env(
        self, port: int, db: str, parallelism: int, users: dict[str, str] | None = None
    ) -> dict[str, str]:
        url = self.url(port)
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AIRFLOW") and k != "MLPIPE_WORKSPACE"
        }
        bin_dir = str(Path(sys.executable).parent)
        return {
            **inherited,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_dir),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            # A changed DAG file is serialized at once, not up to 30 s later: a pipeline edited
            # and submitted again never runs its previous version (see docs/servers.md).
            "AIRFLOW__CORE__MIN_SERIALIZED_DAG_UPDATE_INTERVAL": "0",
            # The task supervisor notices a skipped (reused) step's exit within 1 s, not 5 s.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
                f"{name}:{role}" for name, role in (users or {USERNAME: "admin"}).items()
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.passwords_file),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
        }

    def default_db(self) -> str:
        return f"sqlite:///{self.home / 'airflow.db'}"

    def ensure_password(self, users: dict[str, str] | None = None) -> str:
        """The admin password; every user's password is generated once and kept (0600) where
        the auth manager reads it, before it starts (it would print the ones it generates)."""
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        passwords: dict[str, str] = {}
        if self.passwords_file.is_file():
            with contextlib.suppress(ValueError):
                loaded = json.loads(self.passwords_file.read_text(encoding="utf-8"))
                passwords = {str(k): str(v) for k, v in loaded.items()}
        missing = [name for name in (users or {USERNAME: "admin"}) if name not in passwords]
        for name in missing:
            passwords[name] = secrets.token_urlsafe(24)
        if missing or not self.passwords_file.is_file():
            _write_private(self.passwords_file, json.dumps(passwords) + "\n")
        os.chmod(self.passwords_file, 0o600)
        return passwords[USERNAME]


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)


def _reap(pid: int) -> None:
    """Collect the exit status if the server is our own child (only in tests or scripts)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _redact(db: str) -> str:
    """A DB URL for printing: the password replaced."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(db)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return db


def _check_db_driver(db: str) -> None:
    if db.startswith(("postgresql", "postgres")):
        scheme = db.split("://")[0]
        driver = "psycopg" if scheme.endswith("+psycopg") else "psycopg2"
        import importlib.util

        if importlib.util.find_spec(driver) is None:
            raise UserErrorException(
                f"--db {_redact(db)}: the PostgreSQL driver {driver!r} is not installed; install "
                "it (mlpipe[postgres] brings both drivers, through apache-airflow-providers-postgres) "
                "or leave out --db for SQLite"
            )
    elif not db.startswith("sqlite:"):
        raise UserErrorException(f"--db {_redact(db)}: expected a postgresql:// or sqlite:/// URL")


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def server_up(
    workspace: str | None,
    port: int | None = None,
    db: str | None = None,
    parallelism: int | None = None,
    timeout_s: float = 240,
    users: list[str] | None = None,
) -> int:
    ws_dir = resolve_workspace(workspace)
    server = LocalServer(ws_dir)
    config = load_config(ws_dir)
    if config.airflow is not None and not server.is_ours(config.airflow):
        raise UserErrorException(
            f"workspace {ws_dir} already submits to the Airflow at {config.airflow.url}; remove "
            "the 'airflow' entry from its config.json to use a local server instead"
        )
    settings = server.settings()
    port = port if port is not None else settings.get("port", DEFAULT_PORT)
    db = db or settings.get("db") or server.default_db()
    parallelism = parallelism or settings.get("parallelism", DEFAULT_PARALLELISM)
    accounts = parse_users([*settings.get("users", []), *(users or [])])
    running = server.pid()
    if running is not None:
        client = AirflowClient(server.url(settings.get("port", port)))
        print(
            f"Airflow is already running for {ws_dir} (pid {running}) at {client.url}; "
            f"`mlpipe server status` shows its health"
        )
        return 0
    _check_db_driver(db)
    if not _port_free(port):
        raise UserErrorException(
            f"port {port} on 127.0.0.1 is in use; pass --port N to use another one"
        )
    password = server.ensure_password(accounts)
    server.dags_dir.mkdir(parents=True, exist_ok=True)
    extra_users = [f"{name}:{role}" for name, role in accounts.items() if name != USERNAME]
    _write_private(
        server.settings_file,
        json.dumps(
            {"port": port, "db": db, "parallelism": parallelism, "users": extra_users}, indent=2
        )
        + "\n",
    )
    env = server.env(port, db, parallelism, accounts)
    started = time.monotonic()
    with open(server.log_file, "ab") as log:
        log.write(f"\n--- mlpipe server up {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        proc = subprocess.Popen(  # noqa: S603 - our own module, argument list
            [sys.executable, "-m", "mlpipe_provider.cli.server_supervisor"],
            env=env,
            cwd=server.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server.pid_file.write_text(f"{proc.pid}\n")
    client = AirflowClient(server.url(port), USERNAME, password)
    print(f"Starting Airflow for {ws_dir} at {client.url} (pid {proc.pid}, log {server.log_file})")
    deadline = started + timeout_s
    while True:
        if proc.poll() is not None:
            server.pid_file.unlink(missing_ok=True)
            raise MlpipeError(
                f"Airflow exited with status {proc.returncode} while starting; the end of "
                f"{server.log_file}:\n{_log_tail(server.log_file)}"
            )
        if client.is_healthy():
            break
        if time.monotonic() > deadline:
            _stop_group(proc.pid)
            server.pid_file.unlink(missing_ok=True)
            raise MlpipeError(
                f"Airflow was not healthy after {timeout_s:.0f} s (stopped it); the end of "
                f"{server.log_file}:\n{_log_tail(server.log_file)}"
            )
        time.sleep(1)
    client.token()  # the generated password works
    config = load_config(ws_dir)
    config.airflow = server.config_entry(port)
    save_config(ws_dir, config)
    print(
        f"Airflow is up after {time.monotonic() - started:.0f} s: {client.url}\n"
        f"  Log in as {USERNAME!r}; the password is in {server.passwords_file} (readable only by you)\n"
        + "".join(
            f"  Also user {u!r} (NAME:ROLE): password in the same file\n" for u in extra_users
        )
        + f"  DAG folder: {server.dags_dir}; database: {_redact(db)}\n"
        f"  This workspace now submits to it (`mlpipe deploy`, `mlpipe submit`, Experiment.submit).\n"
        f"  Stop it with `mlpipe server down`."
    )
    return 0


def _stop_group(pgid: int, timeout_s: float = 30) -> bool:
    """SIGTERM the process group, then SIGKILL what is left; True when it is gone."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pgid)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.3)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    time.sleep(0.5)
    _reap(pgid)
    return False


def server_down(workspace: str | None, forget: bool = False) -> int:
    ws_dir = resolve_workspace(workspace)
    server = LocalServer(ws_dir)
    pid = server.pid()
    if pid is None:
        print(f"no local Airflow is running for {ws_dir}")
    else:
        graceful = _stop_group(pid)
        print(f"stopped Airflow (pid {pid}{'' if graceful else ', killed after 30 s'})")
    server.pid_file.unlink(missing_ok=True)
    if forget:
        config = load_config(ws_dir)
        if server.is_ours(config.airflow):
            config.airflow = None
            save_config(ws_dir, config)
            print("the workspace runs pipelines on the embedded Airflow again")
    return 0


def server_status(workspace: str | None) -> int:
    ws_dir = resolve_workspace(workspace)
    server = LocalServer(ws_dir)
    config = load_config(ws_dir)
    entry = config.airflow
    pid = server.pid()
    if entry is None:
        print(f"workspace {ws_dir} names no Airflow server (it runs pipelines embedded)")
        if pid is not None:
            print(f"  a local Airflow is running (pid {pid}) but is not recorded in the config")
        return 1
    ours = server.is_ours(entry)
    print(f"Airflow for {ws_dir}: {entry.url} ({'local' if ours else 'external'})")
    if ours:
        print(f"  process: {f'running, pid {pid}' if pid else 'not running'}")
    client = AirflowClient.from_workspace(ws_dir, config)
    try:
        health = client.health()
    except AirflowUnreachable as exc:
        print(f"  not reachable: {exc}")
        return 1
    healthy = True
    for name in HEALTH_COMPONENTS:
        state = (health.get(name) or {}).get("status", "unknown")
        healthy &= state == "healthy"
        print(f"  {name}: {state}")
    try:
        client.token() if client.username else None
        print(f"  login as {client.username!r}: ok" if client.username else "  login: none")
    except MlpipeError as exc:
        print(f"  login: {exc}")
        healthy = False
    return 0 if healthy else 1
