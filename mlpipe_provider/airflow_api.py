"""A small client for Airflow 3's REST API (v2): what submitting and following runs needs.

Standard library only (``urllib``), so the SDK and the CLI can use it without Airflow imported.
Authentication is the auth manager's token endpoint (``POST /auth/token`` with a username and
password, then ``Authorization: Bearer``); with no username the requests go unauthenticated
(a server with ``simple_auth_manager_all_admins``). The password comes from an environment
variable or a file named in the workspace config, never from the config itself.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import MlpipeError, UserErrorException

#: health components a usable server reports as healthy
HEALTH_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


TRANSIENT_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)


class AirflowApiError(MlpipeError):
    """The server answered with an HTTP error; ``status`` is its code, ``detail`` its message."""

    def __init__(self, method: str, path: str, status: int, detail: Any):
        self.status = status
        self.detail = detail
        super().__init__(f"Airflow API {method} {path} failed with HTTP {status}: {detail}")


class AirflowUnreachable(MlpipeError):
    """No answer at all (server down, wrong URL)."""


def read_password(
    workspace_dir: Path, password_env: str | None, password_file: str | None, username: str | None
) -> str | None:
    """The password named by the config: an environment variable, else a file.

    The file holds the password alone, or a JSON object ``{username: password}`` (the format of
    the simple auth manager's ``simple_auth_manager_passwords.json.generated``). A relative path
    is relative to the workspace folder.
    """
    if password_env:
        value = os.environ.get(password_env)
        if value:
            return value
        if not password_file:
            raise UserErrorException(
                f"the workspace's Airflow password comes from ${password_env}, which is not set"
            )
    if not password_file:
        return None
    path = Path(password_file)
    if not path.is_absolute():
        path = Path(workspace_dir) / path
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UserErrorException(f"cannot read the Airflow password file {path}: {exc}") from exc
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UserErrorException(f"{path}: not valid JSON ({exc})") from exc
        if username not in data:
            raise UserErrorException(f"{path} has no password for user {username!r}")
        return str(data[username])
    return text


class AirflowClient:
    """REST calls against one Airflow API server."""

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 30,
    ):
        self.url = url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout_s = timeout_s
        self._token: str | None = None

    @classmethod
    def from_workspace(cls, workspace_dir: Path, config: Any = None) -> AirflowClient:
        """The client for the server a workspace's config names (``config.airflow``)."""
        from mlpipe_provider.config import load_config

        server = (config or load_config(workspace_dir)).airflow
        if server is None:
            raise UserErrorException(
                f"workspace {workspace_dir} names no Airflow server; start one with "
                "`mlpipe server up` or add an 'airflow' entry to its config.json (docs/servers.md)"
            )
        password = read_password(
            workspace_dir,
            server.password_env,
            getattr(server, "password_file", None),
            server.username,
        )
        return cls(server.url, server.username, password)

    def __repr__(self) -> str:
        return f"AirflowClient({self.url!r}, username={self.username!r})"

    # --- transport ---------------------------------------------------------------------------
    def _raw(
        self, method: str, path: str, body: Any = None, auth: bool = True
    ) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth and self.username:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AirflowUnreachable(
                f"cannot reach Airflow at {self.url} ({reason}); is it running? "
                "(`mlpipe server status`)"
            ) from exc

    def request(self, method: str, path: str, body: Any = None, auth: bool = True) -> Any:
        status, raw = self._raw(method, path, body, auth)
        if status == 401 and auth and self.username:
            self._token = None  # expired: log in again, once
            status, raw = self._raw(method, path, body, auth)
        for delay in TRANSIENT_RETRY_DELAYS_S:
            # A busy metadata DB (SQLite's single writer, a Postgres failover) answers 500
            # "Database error" or 503; the transaction was rolled back, so trying again is safe.
            if not (status == 503 or (status == 500 and b"Database error" in raw)):
                break
            time.sleep(delay)
            status, raw = self._raw(method, path, body, auth)
        text = raw.decode("utf-8", errors="replace")
        if status >= 400:
            try:
                detail = json.loads(text).get("detail", text)
            except (ValueError, AttributeError):
                detail = text
            raise AirflowApiError(method, path, status, detail)
        return json.loads(text) if text.strip() else None

    def get(self, path: str, **query: Any) -> Any:
        if query:
            path += "?" + urllib.parse.urlencode(
                {k: v for k, v in query.items() if v is not None}, doseq=True
            )
        return self.request("GET", path)

    def token(self) -> str:
        if self._token is None:
            if self._password is None:
                raise UserErrorException(
                    f"no password for Airflow user {self.username!r} at {self.url}: set the "
                    "workspace config's airflow.password_env or airflow.password_file"
                )
            status, raw = self._raw(
                "POST",
                "/auth/token",
                {"username": self.username, "password": self._password},
                auth=False,
            )
            if status >= 400:
                raise AirflowApiError(
                    "POST",
                    "/auth/token",
                    status,
                    f"login as {self.username!r} refused (check the password)",
                )
            self._token = json.loads(raw)["access_token"]
        return self._token

    # --- server ----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return self.request("GET", "/api/v2/monitor/health", auth=False)

    def is_healthy(self) -> bool:
        try:
            health = self.health()
        except (AirflowUnreachable, AirflowApiError, ValueError):
            return False
        return all(
            (health.get(name) or {}).get("status") == "healthy" for name in HEALTH_COMPONENTS
        )

    # --- DAGs ------------------------------------------------------------------------------
    def dag(self, dag_id: str) -> dict[str, Any] | None:
        try:
            return self.get(f"/api/v2/dags/{_q(dag_id)}")
        except AirflowApiError as exc:
            if exc.status == 404:
                return None
            raise

    def dag_details(self, dag_id: str) -> dict[str, Any]:
        try:
            return self.get(f"/api/v2/dags/{_q(dag_id)}/details")
        except AirflowApiError as exc:
            if exc.status == 404:
                raise UserErrorException(
                    f"Airflow at {self.url} has no DAG {dag_id!r} (deploy it with `mlpipe deploy`)"
                ) from exc
            raise

    def dag_source(self, dag_id: str) -> str | None:
        try:
            return self.get(f"/api/v2/dagSources/{_q(dag_id)}").get("content")
        except AirflowApiError as exc:
            if exc.status == 404:
                return None
            raise

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", {"is_paused": False})

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self._paged("/api/v2/importErrors", "import_errors"))

    def wait_for_dag(
        self, dag_id: str, dag_file: Path | None = None, timeout_s: float = 120
    ) -> dict[str, Any]:
        """Wait until the server has parsed ``dag_id`` (from exactly the text of ``dag_file``).

        A DAG the server already knew counts only once its stored source equals the file, so a
        run never starts on the previous version of a pipeline. An import error for the file
        ends the wait with the error's traceback. A paused DAG without a schedule is unpaused
        (a scheduled one is left as it is: unpausing would start its schedule).
        """
        text = dag_file.read_text(encoding="utf-8") if dag_file else None
        written = dag_file.stat().st_mtime if dag_file else 0.0
        deadline = time.monotonic() + timeout_s
        while True:
            dag = self.dag(dag_id)
            if dag is not None and (text is None or self.dag_source(dag_id) == text):
                if dag.get("is_paused") and dag.get("timetable_summary") is None:
                    self.unpause(dag_id)
                    dag["is_paused"] = False
                return dag
            if dag_file is not None:
                error = self._import_error_for(dag_file, written)
                if error is not None:
                    raise UserErrorException(
                        f"Airflow at {self.url} cannot import {dag_file.name} (DAG {dag_id!r}):\n"
                        + error["stack_trace"].rstrip()
                    )
            if time.monotonic() > deadline:
                where = f" from {dag_file}" if dag_file else ""
                raise MlpipeError(
                    f"Airflow at {self.url} did not parse DAG {dag_id!r}{where} within "
                    f"{timeout_s:.0f} s; is its DAG folder this workspace's dags folder?"
                )
            time.sleep(1)

    def _import_error_for(self, dag_file: Path, written: float) -> dict[str, Any] | None:
        for error in self.import_errors():
            if Path(error.get("filename", "")).name != dag_file.name:
                continue
            when = _timestamp(error.get("timestamp"))
            if when is None or when >= written - 1:
                return error
        return None

    # --- pools -----------------------------------------------------------------------------
    def set_pools(self, pools: dict[str, dict[str, Any]]) -> None:
        """Create or resize pools (``{name: {slots, description, include_deferred}}``)."""
        for name, pool in pools.items():
            body = {
                "name": name,
                "slots": pool["slots"],
                "description": pool.get("description", ""),
                "include_deferred": pool.get("include_deferred", False),
            }
            try:
                self.request("PATCH", f"/api/v2/pools/{_q(name)}", body)
            except AirflowApiError as exc:
                if exc.status != 404:
                    raise
                self.request("POST", "/api/v2/pools", body)

    # --- runs ------------------------------------------------------------------------------
    def trigger(
        self, dag_id: str, conf: dict[str, Any], dag_run_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if dag_run_id:
            body["dag_run_id"] = dag_run_id
        return self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", body)

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")

    def dag_runs(self, dag_id: str, limit: int = 25) -> list[dict[str, Any]]:
        data = self.get(f"/api/v2/dags/{_q(dag_id)}/dagRuns", order_by="-run_after", limit=limit)
        return list(data.get("dag_runs", []))

    def set_dag_run_state(self, dag_id: str, run_id: str, state: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}", {"state": state})

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(
            self._paged(
                f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances", "task_instances"
            )
        )

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any | None:
        """A task's XCom value as the task pushed it (JSON types), or None when it has none."""
        path = (
            f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
            f"/xcomEntries/{_q(key)}"
        )
        try:
            entry = self.get(path)
        except AirflowApiError as exc:
            if exc.status == 404:
                return None
            raise
        return _decode_xcom(entry.get("value"))

    def _paged(self, path: str, field: str, page: int = 100) -> Any:
        offset = 0
        while True:
            data = self.get(path, limit=page, offset=offset)
            items = data.get(field, [])
            yield from items
            offset += len(items)
            if not items or offset >= data.get("total_entries", 0):
                return


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def _timestamp(value: str | None) -> float | None:
    import datetime as dt

    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _decode_xcom(value: Any) -> Any:
    """The API returns the stored (serialized) form; mlpipe's records are JSON, stored as text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
