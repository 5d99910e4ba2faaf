"""``Experiment.submit`` and the run handles it returns (``PipelineRun``, ``StepRun``).

With no Airflow server configured, a submit compiles the pipeline into the workspace's DAG folder
(one DAG per experiment; Airflow 3 versions the DAG when the pipeline changes) and starts a
background process that runs it on the embedded Airflow. Run records live in the workspace, so a
later process can list and inspect earlier runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlpipe_provider.embedded.status import (
    LOG_FILE,
    REQUEST_FILE,
    STATUS_FILE,
    TERMINAL,
    read_json,
    write_json,
)
from mlpipe_provider.errors import MlpipeError, UserErrorException

_EXPERIMENT_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")


class Experiment:
    """A named group of runs; each experiment's pipeline is one Airflow DAG of the same name."""

    def __init__(
        self,
        workspace: Any,
        name: str,
        _skip_name_validation: bool = False,
        _id: str | None = None,
        _archived_time: Any = None,
        _create_in_cloud: bool = True,
        _experiment_dto: Any = None,
        **kwargs: Any,
    ):
        if not _skip_name_validation and (
            not isinstance(name, str) or not _EXPERIMENT_NAME_RE.match(name)
        ):
            raise UserErrorException(
                f"experiment name {name!r} must be 1-255 letters, digits, '_' or '-', starting with a letter or digit"
            )
        self.workspace = workspace
        self.name = name

    @staticmethod
    def _recorded_names(workspace: Any) -> list[str]:
        names = set()
        runs_dir = workspace.runs_dir
        if runs_dir.is_dir():
            for request in runs_dir.glob(f"*/{REQUEST_FILE}"):
                data = read_json(request)
                if data:
                    names.add(data["experiment"])
        return sorted(names)

    @staticmethod
    def list(
        workspace: Any,
        experiment_name: str | None = None,
        view_type: str = "ActiveOnly",
        tags: Any = None,
    ) -> list[Experiment]:
        names = Experiment._recorded_names(workspace)
        return [Experiment(workspace, n) for n in names if experiment_name in (None, n)]

    def submit(self, config: Any, tags: dict | None = None, **kwargs: Any) -> PipelineRun:
        from mlpipe_provider.sdk.pipeline import Pipeline
        from mlpipe_provider.sdk.published import PipelineEndpoint, PublishedPipeline

        if isinstance(config, (PublishedPipeline, PipelineEndpoint)):
            return config._submit_to(self, tags=tags, **kwargs)
        if not isinstance(config, Pipeline):
            raise UserErrorException(
                "Experiment.submit: mlpipe submits Pipeline, PublishedPipeline or PipelineEndpoint "
                f"objects, got {type(config).__name__}"
            )
        return _submit_pipeline(self, config, tags=tags, **kwargs)

    def get_runs(
        self,
        type: str | None = None,
        tags: Any = None,
        properties: Any = None,
        include_children: bool = False,
    ) -> Iterator[PipelineRun]:
        """Runs of this experiment, newest first."""
        runs = []
        if self.workspace.runs_dir.is_dir():
            for request_file in self.workspace.runs_dir.glob(f"*/{REQUEST_FILE}"):
                data = read_json(request_file)
                if data and data.get("experiment") == self.name:
                    runs.append((data.get("created", 0), data["run_id"]))
        for _, run_id in sorted(runs, reverse=True):
            yield PipelineRun(self, run_id)

    @property
    def id(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"


def _check_parameters(
    lowered_params: dict[str, Any], given: dict | None, workspace: Any = None
) -> dict[str, Any]:
    from mlpipe_provider.runtime.data_path import is_data_path_type, normalize_data_path
    from mlpipe_provider.runtime.dataset_param import is_dataset_type, normalize_dataset_value

    if given is None:
        return {}
    if not isinstance(given, dict):
        raise UserErrorException("pipeline_parameters must be a dict of name -> value")
    conf: dict[str, Any] = {}
    for name, value in given.items():
        if name not in lowered_params:
            known = ", ".join(sorted(lowered_params)) or "none"
            raise UserErrorException(
                f"pipeline_parameters: unknown parameter {name!r} (this pipeline has: {known})"
            )
        expected = lowered_params[name]["type"]
        if is_data_path_type(expected):  # a DataPath parameter: a path on a datastore
            default_store = lowered_params[name]["default"]["datastore"]
            conf[name] = normalize_data_path(
                value, default_store, what=f"pipeline_parameters: parameter {name!r}"
            )
            continue
        if is_dataset_type(expected):  # a dataset parameter: travels as a serialized dataset
            conf[name] = normalize_dataset_value(
                value,
                lowered_params[name]["default"]["dataset_type"],
                what=f"pipeline_parameters: parameter {name!r}",
                workspace_dir=getattr(workspace, "_dir", None),
                datastores=getattr(getattr(workspace, "_config", None), "datastores", None),
            )
            continue
        ok = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        }[expected]
        if not ok:
            raise UserErrorException(
                f"pipeline_parameters: parameter {name!r} expects {expected}, got {type(value).__name__} {value!r}"
            )
        conf[name] = value
    return conf


_submits_blocked = threading.local()


@contextlib.contextmanager
def submits_blocked() -> Iterator[None]:
    """While the compiler loads a pipeline file, running it must never submit anything."""
    previous = getattr(_submits_blocked, "on", False)
    _submits_blocked.on = True
    try:
        yield
    finally:
        _submits_blocked.on = previous


def _submit_pipeline(
    experiment: Experiment,
    pipeline: Any,
    tags: dict | None = None,
    pipeline_parameters: dict | None = None,
    regenerate_outputs: bool = False,
    continue_on_step_failure: bool = False,
    **kwargs: Any,
) -> PipelineRun:
    from compiler.compile import compile_pipeline
    from compiler.lower import lower

    if getattr(_submits_blocked, "on", False):
        raise UserErrorException(
            "Experiment.submit was called while compiling a pipeline file; compiling never submits "
            "(name a function that returns the Pipeline, or keep submits under `if __name__ == '__main__'`)"
        )

    ws = experiment.workspace
    compiled = compile_pipeline(
        pipeline,
        experiment.name,
        ws.dags_dir,
        origin=f"experiment {experiment.name}",
        tags=[f"experiment:{experiment.name}"],
    )
    compiled.write()
    conf = _check_parameters(lower(pipeline).parameters, pipeline_parameters, ws)
    return start_run(
        experiment,
        compiled.dag_id,
        compiled.path,
        compiled.pools_path,
        conf,
        tags=tags,
        regenerate_outputs=regenerate_outputs,
        continue_on_step_failure=continue_on_step_failure,
    )


def start_run(
    experiment: Experiment,
    dag_id: str,
    dag_file: Path,
    pools_file: Path | None,
    conf: dict[str, Any],
    *,
    tags: dict | None = None,
    regenerate_outputs: bool = False,
    continue_on_step_failure: bool = False,
) -> PipelineRun:
    """Run an already compiled DAG for ``experiment`` and return its handle.

    This is where every submit ends (a Pipeline, a published pipeline, an endpoint): with no
    Airflow server configured, a background process runs the DAG on the embedded Airflow; when
    the workspace config names a server, the DAG (already in the workspace's DAG folder, which
    the server reads) is installed and triggered through its REST API (``sdk/server_runs.py``).
    """
    from mlpipe_provider.embedded.airflow_env import embedded_airflow_env
    from mlpipe_provider.runtime.step_failure import CONTINUE_PARAM

    ws = experiment.workspace
    conf = dict(conf)
    if regenerate_outputs:
        conf["mlpipe_regenerate_outputs"] = True
    if continue_on_step_failure:  # the DAG param's default is v1's False (runtime/step_failure.py)
        conf[CONTINUE_PARAM] = True
    if ws._config.airflow is not None:
        from mlpipe_provider.sdk.server_runs import start_server_run

        return start_server_run(
            experiment,
            dag_id,
            Path(dag_file),
            Path(pools_file) if pools_file else None,
            conf,
            tags=tags,
            regenerate_outputs=regenerate_outputs,
            continue_on_step_failure=continue_on_step_failure,
        )
    run_id = str(uuid.uuid4())
    run_dir = ws.runs_dir / run_id
    run_dir.mkdir(parents=True)
    env = {**os.environ, **embedded_airflow_env(ws._dir, Path(dag_file).parent)}
    run_db = run_dir / "airflow.db"
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{run_db}"
    request = {
        "run_id": run_id,
        "experiment": experiment.name,
        "dag_id": dag_id,
        "dag_file": str(dag_file),
        "pools_file": str(pools_file) if pools_file else None,
        "airflow_home": env["AIRFLOW_HOME"],
        "airflow_db": str(run_db),
        "conf": conf,
        "tags": dict(tags or {}),
        "created": time.time(),
        "logical_date": dt.datetime.now(dt.UTC).isoformat(),
        "regenerate_outputs": bool(regenerate_outputs),
        "continue_on_step_failure": bool(continue_on_step_failure),
    }
    write_json(run_dir / REQUEST_FILE, request)
    write_json(run_dir / STATUS_FILE, {"status": "NotStarted", "steps": {}})
    with open(run_dir / LOG_FILE, "wb") as log:
        subprocess.Popen(  # noqa: S603 - our own module, argument list
            [sys.executable, "-m", "mlpipe_provider.embedded.runner", str(run_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    print(f"Submitted PipelineRun {run_id} (experiment {experiment.name!r}, DAG {dag_id!r})")
    return PipelineRun(experiment, run_id)


class PortDataReference:
    """An output of a finished step: where it is, and ``download`` to copy it locally."""

    def __init__(self, workspace: Any, name: str, datastore_name: str, path_on_datastore: str):
        self._workspace = workspace
        self.name = name
        self.datastore_name = datastore_name
        self.path_on_datastore = path_on_datastore

    @property
    def datastore(self) -> Any:
        from mlpipe_provider.sdk.datastore import Datastore

        return Datastore(self._workspace, self.datastore_name)

    def download(self, local_path: str, overwrite: bool = False, show_progress: bool = True) -> str:
        """Copy the output to ``local_path/<path_on_datastore>`` (v1's layout); returns that path."""
        self.datastore.download(
            local_path,
            prefix=self.path_on_datastore,
            overwrite=overwrite,
            show_progress=show_progress,
        )
        return str(Path(local_path) / self.path_on_datastore)

    def __repr__(self) -> str:
        return f"PortDataReference(name={self.name!r}, datastore={self.datastore_name!r}, path={self.path_on_datastore!r})"


class StepRun:
    """One step's run inside a pipeline run."""

    def __init__(self, pipeline_run: PipelineRun, task_id: str, info: dict[str, Any]):
        self._pipeline_run = pipeline_run
        self._task_id = task_id
        self._info = info
        record = info.get("record") or {}
        self.id = record.get("step_run_id") or f"{pipeline_run.id}:{task_id}"
        self.name = record.get("step_name") or info.get("display_name") or task_id
        self.parent = pipeline_run

    @property
    def _record(self) -> dict[str, Any]:
        return self._info.get("record") or {}

    def get_status(self) -> str:
        return self._info.get("status", "NotStarted")

    @property
    def status(self) -> str:
        return self.get_status()

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        metrics = dict(self._record.get("metrics") or {})
        if name is not None:
            return {name: metrics[name]} if name in metrics else {}
        return metrics

    def get_properties(self) -> dict[str, str]:
        props = {
            "azureml.runsource": "azureml.StepRun",
            "azureml.nodeid": self._task_id,
            "StepType": str(self._info.get("operator") or "PythonScriptStepOperator").removesuffix(
                "Operator"
            ),
            "mlpipe.airflow.task_id": self._task_id,
        }
        if self._record.get("reused_run_id"):
            props["azureml.reusedrunid"] = self._record["reused_run_id"]
            props["azureml.reusedpipelinerunid"] = self._record.get("reused_pipeline_run_id", "")
        return props

    def get_details(self) -> dict[str, Any]:
        return {
            "runId": self.id,
            "target": (self._record.get("compute") or {}).get("name"),
            "status": self.get_status(),
            "startTimeUtc": self._info.get("start"),
            "endTimeUtc": self._info.get("end"),
            "properties": self.get_properties(),
            "inputDatasets": [],
            "outputDatasets": [],
            "runDefinition": {"stepName": self.name, "airflowTaskId": self._task_id},
        }

    def get_outputs(self) -> dict[str, PortDataReference]:
        return {name: self.get_output_data(name) for name in (self._record.get("outputs") or {})}

    def get_output(self, name: str) -> PortDataReference:
        return self.get_output_data(name)

    def get_output_data(self, name: str) -> PortDataReference:
        outputs = self._record.get("outputs") or {}
        if name not in outputs:
            known = ", ".join(sorted(outputs)) or "none"
            raise UserErrorException(
                f"step {self.name!r} has no output {name!r} (outputs: {known})"
            )
        location = outputs[name]
        return PortDataReference(
            self._pipeline_run.experiment.workspace, name, location["datastore"], location["path"]
        )

    @property
    def reused(self) -> bool:
        return bool(self._record.get("reused"))

    def __repr__(self) -> str:
        return f"StepRun(name={self.name!r}, status={self.get_status()!r})"


class PipelineRun:
    """A submitted pipeline run; ``wait_for_completion`` follows it step by step.

    Its state comes from a run source (``sdk/run_source.py``): ``status.json`` for an embedded
    run, the Airflow REST API for a run on a server (``request.json`` names the server). Both
    give the same shape, so everything below reads one structure.
    """

    def __init__(self, experiment: Experiment, run_id: str, _service_endpoint: Any = None):
        from mlpipe_provider.sdk.run_source import run_source

        self.experiment = experiment
        self.id = run_id
        self._dir = experiment.workspace.runs_dir / run_id
        request = read_json(self._dir / REQUEST_FILE)
        if request is None:
            raise UserErrorException(
                f"no pipeline run {run_id!r} in workspace {experiment.workspace.name!r}"
            )
        self._source = run_source(experiment.workspace._dir, self._dir, request)

    @property
    def _request(self) -> dict[str, Any]:
        return read_json(self._dir / REQUEST_FILE) or {}

    @property
    def _status(self) -> dict[str, Any]:
        return self._source.status()

    def get_status(self) -> str:
        return self._status.get("status", "NotStarted")

    @property
    def status(self) -> str:
        return self.get_status()

    def get_steps(self) -> Iterator[StepRun]:
        for task_id, info in sorted(
            self._status.get("steps", {}).items(), key=lambda kv: kv[1].get("start") or "~"
        ):
            yield StepRun(self, task_id, info)

    def find_step_run(self, name: str) -> list[StepRun]:
        return [step for step in self.get_steps() if step.name == name]

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        """With ``recursive=True``, ``{step run id: metrics}`` as in v1; otherwise all steps' metrics merged."""
        if recursive:
            return {step.id: step.get_metrics(name) for step in self.get_steps()}
        merged: dict[str, Any] = {}
        for step in self.get_steps():
            merged.update(step.get_metrics(name))
        return merged

    def get_details(self) -> dict[str, Any]:
        request, status = self._request, self._status
        return {
            "runId": self.id,
            "status": status.get("status"),
            "experiment": request.get("experiment"),
            "airflowDagId": request.get("dag_id"),
            "airflowRunId": status.get("airflow_run_id"),
            "parameters": request.get("conf", {}),
            "tags": request.get("tags", {}),
            "error": status.get("error"),
        }

    def get_tags(self) -> dict[str, str]:
        return dict(self._request.get("tags", {}))

    def get_properties(self) -> dict[str, str]:
        props = {
            "azureml.runsource": "azureml.PipelineRun",
            "mlpipe.airflow.dag_id": self._request.get("dag_id", ""),
        }
        if self._request.get("server"):
            props["mlpipe.airflow.server"] = self._request["server"]
            props["mlpipe.airflow.run_id"] = self._request.get("airflow_run_id", "")
        return props

    def wait_for_completion(
        self,
        show_output: bool = True,
        timeout_seconds: float = sys.maxsize,
        raise_on_error: bool = True,
    ) -> str:
        """Poll the run's state; with ``show_output`` print each step's state as it changes."""
        deadline = time.monotonic() + timeout_seconds
        seen: dict[str, str] = {}
        if show_output:
            print(f"PipelineRunId: {self.id}")
        status = self._status
        while True:
            status = self._status
            if show_output:
                self._print_changes(status, seen)
            if status.get("status") in TERMINAL:
                break
            if time.monotonic() > deadline:
                if raise_on_error:
                    raise MlpipeError(
                        f"PipelineRun {self.id} did not finish within {timeout_seconds} s"
                    )
                return status.get("status", "Running")
            time.sleep(self._source.poll_interval)
        final = status.get("status")
        if show_output:
            print(f"PipelineRun Status: {final}")
            if status.get("error"):
                print(status["error"])
        if final != "Finished" and raise_on_error:
            failed = [s.name for s in self.get_steps() if s.get_status() == "Failed"]
            detail = f" (failed steps: {', '.join(failed)})" if failed else ""
            raise MlpipeError(
                f"PipelineRun {self.id} ended {final}{detail}; see {self._source.where()}"
            )
        return final

    def _print_changes(self, status: dict[str, Any], seen: dict[str, str]) -> None:
        for task_id, info in sorted(
            status.get("steps", {}).items(), key=lambda kv: kv[1].get("start") or "~"
        ):
            record = info.get("record") or {}
            label = info.get("status", "NotStarted")
            if record.get("reused"):
                label = f"Finished (reused run {record.get('reused_run_id')})"
            if seen.get(task_id) != label:
                seen[task_id] = label
                name = record.get("step_name") or info.get("display_name") or task_id
                line = f"StepRun( {name} ) Status: {label}"
                if label == "Finished" and record.get("metrics"):
                    line += f"  metrics: {record['metrics']}"
                print(line)

    def cancel(self) -> None:
        self._source.cancel()

    def __repr__(self) -> str:
        return f"PipelineRun(Experiment: {self.experiment.name}, Id: {self.id}, Status: {self.get_status()})"
