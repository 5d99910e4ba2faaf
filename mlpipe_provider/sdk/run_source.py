"""Where a ``PipelineRun`` reads its state: one shape, two sources.

Both give the dict that ``runs/<id>/status.json`` holds (``status``, ``error``,
``airflow_run_id``, ``steps``: per step task its state, times and record, with the plan task's
reuse decisions folded in by ``merge_reuse_decisions``), so ``PipelineRun`` and ``StepRun`` have
one code path whichever Airflow ran the pipeline:

- ``EmbeddedRunSource``: the embedded runner rewrites ``status.json``; reading it is the source.
- ``ServerRunSource``: a run on an Airflow server (``request.json`` has ``"server": url``) is read
  through the REST API (the DAG run, its task instances, the XCom ``return_value`` of each
  finished task, and for each skipped (reused) step the record the plan task or the step
  published). Once the run has ended the result is written to ``status.json``, so a finished
  run stays readable without the server.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from mlpipe_provider.contract.constants import ERROR_XCOM, PLAN_TASK_ID, planned_record
from mlpipe_provider.embedded.status import (
    LOG_FILE,
    STATUS_FILE,
    STEP_STATUS,
    TERMINAL,
    merge_reuse_decisions,
    read_json,
    write_json,
)

# Airflow DAG run states -> v1 pipeline run statuses
RUN_STATUS = {
    "queued": "Queued",
    "running": "Running",
    "success": "Finished",
    "failed": "Failed",
}
NOT_STARTED: dict[str, Any] = {"status": "NotStarted", "steps": {}}


class RunSource(Protocol):
    #: seconds between reads while following a run
    poll_interval: float

    def status(self) -> dict[str, Any]: ...

    def cancel(self) -> None: ...

    def where(self) -> str:
        """Where a person looks for details (a log file, the Airflow UI)."""
        ...

    def task_log(self, task_id: str, try_number: int | None = None) -> str:
        """The log of one task of the run ("" when there is none yet)."""
        ...


class EmbeddedRunSource:
    poll_interval = 0.3

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def status(self) -> dict[str, Any]:
        return read_json(self.run_dir / STATUS_FILE) or dict(NOT_STARTED)

    def cancel(self) -> None:
        write_json(self.run_dir / STATUS_FILE, {**self.status(), "status": "Canceled"})

    def where(self) -> str:
        return str(self.run_dir / LOG_FILE)

    def task_log(self, task_id: str, try_number: int | None = None) -> str:
        """The task's part of ``runner.log``: ``dag.test()`` runs one task at a time and marks
        where each starts and ends, so the slice between the marks is that task's log."""
        try:
            text = (self.run_dir / LOG_FILE).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return task_section(text, task_id)


class ServerRunSource:
    """A run on an Airflow server, read through its REST API."""

    poll_interval = 1.0
    #: consecutive failed reads tolerated while following (a server restarting)
    max_unreachable = 30

    def __init__(self, workspace_dir: Path, run_dir: Path, request: dict[str, Any]):
        self.workspace_dir = workspace_dir
        self.run_dir = run_dir
        self.url = str(request["server"]).rstrip("/")
        self.dag_id = request["dag_id"]
        self.airflow_run_id = request["airflow_run_id"]
        self._client: Any = None
        self._records: dict[tuple[str, int], Any] = {}
        self._last: dict[str, Any] | None = None
        self._unreachable = 0

    @property
    def client(self) -> Any:
        """The workspace's credentials when its config still names this server."""
        if self._client is None:
            from mlpipe_provider.airflow_api import AirflowClient
            from mlpipe_provider.config import load_config

            config = load_config(self.workspace_dir)
            if config.airflow is not None and config.airflow.url.rstrip("/") == self.url:
                self._client = AirflowClient.from_workspace(self.workspace_dir, config)
            else:
                self._client = AirflowClient(self.url)
        return self._client

    def status(self) -> dict[str, Any]:
        from mlpipe_provider.airflow_api import AirflowUnreachable

        final = read_json(self.run_dir / STATUS_FILE)
        if final is not None and final.get("status") in TERMINAL:
            return final
        try:
            status = self._read()
        except AirflowUnreachable:
            self._unreachable += 1
            if self._last is not None and self._unreachable < self.max_unreachable:
                return self._last
            raise
        self._unreachable = 0
        self._last = status
        if status["status"] in TERMINAL:
            write_json(self.run_dir / STATUS_FILE, status)
        return status

    def _read(self) -> dict[str, Any]:
        client = self.client
        run = client.dag_run(
            self.dag_id, self.airflow_run_id
        )  # first: a final state means final TIs
        tasks: dict[str, dict[str, Any]] = {}
        for ti in client.task_instances(self.dag_id, self.airflow_run_id):
            state = ti.get("state")
            entry: dict[str, Any] = {
                "state": state,
                "status": STEP_STATUS.get(state, "Running"),
                "start": ti.get("start_date"),
                "end": ti.get("end_date"),
                "try_number": ti.get("try_number"),
                "display_name": ti.get("task_display_name") or ti["task_id"],
                "operator": ti.get("operator"),
            }
            if state == "success":
                key = (ti["task_id"], int(ti.get("try_number") or 0))
                if key not in self._records:
                    self._records[key] = client.xcom(
                        self.dag_id, self.airflow_run_id, ti["task_id"]
                    )
                if self._records[key] is not None:
                    entry["record"] = self._records[key]
            elif state == "skipped":  # reused: found by the plan task, or by the step itself
                record = self._reused_record(ti["task_id"])
                if record is not None:
                    entry["record"] = record
            elif state == "failed":  # why it failed (runtime/step_failure.publish_error)
                key = (f"{ti['task_id']}:{ERROR_XCOM}", int(ti.get("try_number") or 0))
                if key not in self._records:
                    self._records[key] = client.xcom(
                        self.dag_id, self.airflow_run_id, ti["task_id"], key=ERROR_XCOM
                    )
                if self._records[key] is not None:
                    entry["xcom"] = {ERROR_XCOM: self._records[key]}
            tasks[ti["task_id"]] = entry
        state = run.get("state")
        failed = sorted(t for t, info in tasks.items() if info["state"] == "failed")
        error = None
        if failed:
            error = f"failed tasks: {', '.join(failed)}; their logs are in the Airflow UI: {self.where()}"
        return {
            "status": RUN_STATUS.get(state, "Running"),
            "error": error,
            "updated": time.time(),
            "server": self.url,
            "airflow_run_id": self.airflow_run_id,
            "dag_state": state,
            "start": run.get("start_date"),
            "end": run.get("end_date"),
            "steps": merge_reuse_decisions(tasks),
        }

    def _reused_record(self, task_id: str) -> Any:
        """The record a skipped step reused: the plan task's decision, else the step's own."""
        key = (f"{task_id}:reused", 0)
        if key not in self._records:
            plan_key = (PLAN_TASK_ID, -1)
            if plan_key not in self._records:  # final once any step runs: read it once
                self._records[plan_key] = self.client.xcom(
                    self.dag_id, self.airflow_run_id, PLAN_TASK_ID
                )
            record = planned_record(self._records[plan_key], task_id)
            if record is None:
                record = self.client.xcom(self.dag_id, self.airflow_run_id, task_id)
            self._records[key] = record
        return self._records[key]

    def cancel(self) -> None:
        self.client.set_dag_run_state(self.dag_id, self.airflow_run_id, "failed")
        status = self._read()
        write_json(self.run_dir / STATUS_FILE, {**status, "status": "Canceled"})

    def where(self) -> str:
        from urllib.parse import quote

        return f"{self.url}/dags/{quote(self.dag_id, safe='')}/runs/{quote(self.airflow_run_id, safe='')}"

    def task_log(self, task_id: str, try_number: int | None = None) -> str:
        """The task's log through the REST API (every line of its last try)."""
        from mlpipe_provider.airflow_api import AirflowApiError, _q

        if try_number is None:
            try_number = int(self.status().get("steps", {}).get(task_id, {}).get("try_number") or 1)
        path = (
            f"/api/v2/dags/{_q(self.dag_id)}/dagRuns/{_q(self.airflow_run_id)}/taskInstances/"
            f"{_q(task_id)}/logs/{int(try_number)}"
        )
        try:
            answer = self.client.get(path, full_content="true")
        except AirflowApiError as exc:
            if exc.status == 404:
                return ""
            raise
        content = answer.get("content") if isinstance(answer, dict) else answer
        if isinstance(content, list):
            return "\n".join(
                str(c.get("event", c)) if isinstance(c, dict) else str(c) for c in content
            )
        return str(content or "")


_START_MARK = "[DAG TEST] starting task_id={} "
_END_MARK = "[DAG TEST] end task task_id={} "


def task_section(text: str, task_id: str) -> str:
    """Lines of ``runner.log`` between a task's start and end marks (the last try's)."""
    start = text.rfind(_START_MARK.format(task_id))
    if start < 0:
        return ""
    start = text.rfind("\n", 0, start) + 1
    end = text.find(_END_MARK.format(task_id), start)
    end = len(text) if end < 0 else text.find("\n", end)
    return text[start : len(text) if end < 0 else end + 1]


def run_source(workspace_dir: Path, run_dir: Path, request: dict[str, Any]) -> RunSource:
    if request.get("server"):
        return ServerRunSource(workspace_dir, run_dir, request)
    return EmbeddedRunSource(run_dir)
