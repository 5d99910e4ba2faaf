"""``Experiment.submit`` and the run handles it returns (``PipelineRun``, ``StepRun``).

With no Airflow server configured, a submit compiles the pipeline into the workspace's DAG folder
(one DAG per experiment; Airflow 3 versions the DAG when the pipeline changes) and starts a
background process that runs it on the embedded Airflow. Run records live in the workspace, so a
later process can list and inspect earlier runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlpipe_provider.contract.constants import CONTINUE_PARAM, REGENERATE_PARAM
from mlpipe_provider.embedded.status import (
    LOG_FILE,
    REQUEST_FILE,
    STATUS_FILE,
    TERMINAL,
    read_json,
    write_json,
)
from mlpipe_provider.errors import (
    ActivityFailedException,
    MlpipeError,
    NotSupportedError,
    UserErrorException,
)
from mlpipe_provider.sdk import services
from mlpipe_provider.sdk.run_details import (
    STEP_LOG_NAME,
    TERMINAL_STEP,
    add_service_methods,
    base_details,
)

GRAPH_FILE = "graph.json"
_logger = logging.getLogger("azureml.pipeline.core")
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
        """Run ``config``: a Pipeline, a ScriptRunConfig (a one-step run, ``ScriptRun``), a
        PublishedPipeline or a PipelineEndpoint."""
        from mlpipe_provider.sdk.pipeline import Pipeline
        from mlpipe_provider.sdk.published import PipelineEndpoint, PublishedPipeline

        if isinstance(config, PipelineEndpoint):
            kwargs = submit_keywords(
                kwargs, _ENDPOINT_KEYWORDS, "Experiment.submit(PipelineEndpoint)"
            )
            return config._submit_to(self, tags=tags, **kwargs)
        if isinstance(config, PublishedPipeline):
            kwargs = submit_keywords(
                kwargs, _PUBLISHED_KEYWORDS, "Experiment.submit(PublishedPipeline)"
            )
            return config._submit_to(self, tags=tags, **kwargs)
        from mlpipe_provider.sdk.script_run_config import ScriptRunConfig

        if isinstance(config, ScriptRunConfig):
            kwargs = submit_keywords(kwargs, frozenset(), "Experiment.submit(ScriptRunConfig)")
            return _submit_script_run(self, config, tags=tags)
        from mlpipe_provider.sdk.hyperdrive import HyperDriveConfig

        if isinstance(config, HyperDriveConfig):
            from mlpipe_provider.errors import NotSupportedError

            raise NotSupportedError(
                "Experiment.submit(HyperDriveConfig) is not supported by mlpipe: submit a "
                "Pipeline with one HyperDriveStep(name=..., hyperdrive_config=config) and read "
                "the sweep with HyperDriveStepRun(run.find_step_run(name)[0])"
            )
        if not isinstance(config, Pipeline):
            raise UserErrorException(
                "Experiment.submit: mlpipe submits Pipeline, ScriptRunConfig, PublishedPipeline or "
                f"PipelineEndpoint objects, got {type(config).__name__}"
            )
        kwargs = submit_keywords(kwargs, PIPELINE_SUBMIT_KEYWORDS, "Experiment.submit(Pipeline)")
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

    @property
    def archived_time(self) -> None:
        return None

    @property
    def tags(self) -> dict[str, str]:
        return {}

    def get_runs_by_id(self, run_id: str) -> PipelineRun:
        return PipelineRun(self, run_id)

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"


def _experiment_not_supported() -> None:
    from mlpipe_provider.sdk.run_details import not_supported

    instead = {
        "start_logging": "log from inside a step with Run.get_context().log(...); an experiment "
        "runs pipelines here (Experiment.submit)",
        "archive": "an experiment is its runs' records in the workspace (runs/); delete those to "
        "remove it",
        "reactivate": "experiments are never archived here",
        "delete": "an experiment is its runs' records in the workspace (runs/); delete those to "
        "remove it",
        "from_directory": "use Experiment(workspace, name)",
        "tag": "tag runs instead (run.tag(key, value))",
        "set_tags": "tag runs instead (run.set_tags({...}))",
        "remove_tags": "tag runs instead",
        "delete_tags": "tag runs instead",
        "refresh": "an experiment holds no state to refresh here",
    }
    for method, text in instead.items():
        setattr(Experiment, method, not_supported("Experiment", method, text))


_experiment_not_supported()


PIPELINE_SUBMIT_KEYWORDS = frozenset(
    {
        "pipeline_parameters",
        "continue_on_step_failure",
        "regenerate_outputs",
        "parent_run_id",
        "credential_passthrough",
    }
)
_PUBLISHED_KEYWORDS = frozenset(
    {"pipeline_parameters", "continue_on_step_failure", "parent_run_id"}
)
_ENDPOINT_KEYWORDS = _PUBLISHED_KEYWORDS | {"pipeline_version"}


def submit_keywords(kwargs: dict[str, Any], allowed: frozenset[str], what: str) -> dict[str, Any]:
    """The submit options, with v1's deprecated ``pipeline_params`` read as ``pipeline_parameters``.

    v1 routed ``Experiment.submit``'s ``**kwargs`` to the pipeline's submit function, which read
    the names it knew and ignored the rest ("reserved for future development"). A v1 program that
    ran on Azure must not be refused here, so an unknown name is dropped as v1 dropped it, but
    loudly: a misspelt ``pipeline_parmeters`` would otherwise run with the defaults unnoticed.
    """
    kwargs = dict(kwargs)
    if "pipeline_params" in kwargs:
        if kwargs.get("pipeline_parameters") is not None:
            raise TypeError(
                f"{what}: give pipeline_parameters or its deprecated alias pipeline_params, not both"
            )
        _logger.warning(
            "The 'pipeline_params' argument is deprecated. Please use 'pipeline_parameters' instead."
        )
        kwargs["pipeline_parameters"] = kwargs.pop("pipeline_params")
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        message = (
            f"{what} ignores unexpected keyword argument(s) {', '.join(map(repr, unknown))}, as v1 "
            f"did (it takes: {', '.join(sorted(allowed | {'tags'}))})"
        )
        _logger.warning(message)
        warnings.warn(message, UserWarning, stacklevel=3)
        for name in unknown:
            del kwargs[name]
    return kwargs


def check_parameters(
    lowered_params: dict[str, Any], given: dict | None, workspace: Any = None
) -> dict[str, Any]:
    """The run's conf from ``pipeline_parameters`` (the REST routes check with the same code)."""
    from mlpipe_provider.runtime.pipeline_parameters import check_conf

    return check_conf(
        lowered_params,
        given,
        workspace_dir=getattr(workspace, "_dir", None),
        datastores=getattr(getattr(workspace, "_config", None), "datastores", None),
    )


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
    experiment: Experiment, pipeline: Any, tags: dict | None = None, **kwargs: Any
) -> PipelineRun:
    """v1's ``Experiment.submit(pipeline)``: compiling and starting are the client's
    (``mlpipe_provider/client/submit.py``); loading a pipeline file must never get there."""
    if getattr(_submits_blocked, "on", False):
        raise UserErrorException(
            "Experiment.submit was called while compiling a pipeline file; compiling never submits "
            "(name a function that returns the Pipeline, or keep submits under `if __name__ == '__main__'`)"
        )
    return services.client().submit_pipeline(experiment, pipeline, tags=tags, **kwargs)


def _submit_script_run(experiment: Experiment, config: Any, tags: dict | None = None) -> ScriptRun:
    """v1's ``Experiment.submit(ScriptRunConfig)``: the config as a one-step pipeline (a
    ``CommandStep``), so it compiles, runs and is reused exactly like a step of one."""
    from mlpipe_provider.sdk.command_step import CommandStep
    from mlpipe_provider.sdk.pipeline import Pipeline

    step = CommandStep(name=config.script, runconfig=config)
    pipeline = Pipeline(
        experiment.workspace, [step], default_source_directory=config.source_directory
    )
    run = _submit_pipeline(experiment, pipeline, tags=tags)
    return ScriptRun(experiment, run.id)


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
    the server reads) is installed and triggered through its REST API (``client/server_runs.py``).
    """
    from mlpipe_provider.embedded.airflow_env import embedded_airflow_env

    ws = experiment.workspace
    conf = dict(conf)
    if regenerate_outputs:
        conf[REGENERATE_PARAM] = True
    if continue_on_step_failure:  # the DAG param's default is v1's False (runtime/step_failure.py)
        conf[CONTINUE_PARAM] = True
    if ws._config.airflow is not None:
        return services.client().start_server_run(
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
    from mlpipe_provider.embedded.decided_run import record_if_all_reused

    if record_if_all_reused(run_dir, request):  # nothing to run: Airflow need not start
        print(
            f"Submitted PipelineRun {run_id} (experiment {experiment.name!r}, DAG {dag_id!r}): "
            "every step is reused"
        )
        return PipelineRun(experiment, run_id)
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

    @property
    def data_reference_name(self) -> str:
        return self.name

    def download(self, local_path: str, overwrite: bool = False, show_progress: bool = True) -> str:
        """Copy the output to ``local_path/<path_on_datastore>`` (v1's layout); returns that path."""
        self.datastore.download(
            local_path,
            prefix=self.path_on_datastore,
            overwrite=overwrite,
            show_progress=show_progress,
        )
        return str(Path(local_path) / self.path_on_datastore)

    def as_download(
        self,
        input_name: str | None = None,
        path_on_compute: str | None = None,
        overwrite: bool | None = None,
    ) -> Any:
        """This output as an input of a later pipeline (a DataReference to the same path)."""
        return self._as_reference("download", input_name, path_on_compute, overwrite)

    def as_mount(self) -> Any:
        return self._as_reference("mount", None, None, None)

    def as_input(self, input_name: str | None = None) -> Any:
        return self._as_reference("mount", input_name, None, None)

    def _as_reference(
        self, mode: str, input_name: str | None, path_on_compute: str | None, overwrite: bool | None
    ) -> Any:
        from mlpipe_provider.sdk.data import DataReference

        reference = DataReference(
            datastore=self.datastore,
            data_reference_name=input_name or self.name,
            path_on_datastore=self.path_on_datastore,
            mode=mode,
            path_on_compute=path_on_compute,
            overwrite=bool(overwrite),
        )
        return reference

    def __repr__(self) -> str:
        return f"PortDataReference(name={self.name!r}, datastore={self.datastore_name!r}, path={self.path_on_datastore!r})"


class StepRunOutput:
    """v1's output of a step run: ``step_run.get_output(name).get_port_data_reference()``."""

    def __init__(self, step_run: StepRun, name: str, location: dict[str, Any]):
        self._step_run = step_run
        self.name = name
        self._location = location

    @property
    def step_run(self) -> StepRun:
        return self._step_run

    def get_port_data_reference(self) -> PortDataReference:
        return PortDataReference(
            self._step_run._pipeline_run.experiment.workspace,
            self.name,
            self._location["datastore"],
            self._location["path"],
        )

    def __repr__(self) -> str:
        return f"StepRunOutput(name={self.name!r}, step={self._step_run.name!r})"


class StepRun:
    """One step's run inside a pipeline run (v1's ``StepRun``)."""

    type = "azureml.StepRun"

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

    def _refresh(self) -> None:
        self._info = self._pipeline_run._status.get("steps", {}).get(self._task_id, self._info)

    # --- v1 attributes --------------------------------------------------------------------------
    @property
    def experiment(self) -> Experiment:
        return self._pipeline_run.experiment

    @property
    def pipeline_run_id(self) -> str:
        return self._pipeline_run.id

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def number(self) -> int:
        return sorted(self._pipeline_run._status.get("steps", {})).index(self._task_id) + 1

    @property
    def tags(self) -> dict[str, str]:
        return self.get_tags()

    @property
    def properties(self) -> dict[str, str]:
        return self.get_properties()

    def get_status(self) -> str:
        return self._info.get("status", "NotStarted")

    @property
    def status(self) -> str:
        return self.get_status()

    @property
    def reused(self) -> bool:
        return bool(self._record.get("reused"))

    @property
    def target(self) -> str | None:
        return self._info.get("target") or (self._record.get("compute") or {}).get("name")

    @property
    def error(self) -> str | None:
        """Why the step failed (the tail of its error, stderr included), or None."""
        return self._info.get("error")

    # --- metrics, tags, properties ----------------------------------------------------------------
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

    def get_tags(self) -> dict[str, str]:
        return {}

    def get_properties(self) -> dict[str, str]:
        props = {
            "azureml.runsource": "azureml.StepRun",
            "azureml.nodeid": self._task_id,
            "StepType": str(self._info.get("operator") or "PythonScriptStepOperator").removesuffix(
                "Operator"
            ),
            "mlpipe.airflow.task_id": self._task_id,
            **(self._record.get("properties") or {}),  # e.g. mlpipe.python_requested/_used
        }
        if self._record.get("reused_run_id"):
            props["azureml.reusedrunid"] = self._record["reused_run_id"]
            props["azureml.reusedpipelinerunid"] = self._record.get("reused_pipeline_run_id", "")
        return props

    # --- details and logs -----------------------------------------------------------------------
    def get_details(self) -> dict[str, Any]:
        """v1's details dict (``runId``, ``target``, ``status``, ``startTimeUtc``, ``endTimeUtc``,
        ``properties``, ``inputDatasets``, ``outputDatasets``, ``logFiles``, ``error``)."""
        details = base_details(
            self.id,
            self.target,
            self.get_status(),
            self._info.get("start"),
            self._info.get("end"),
            self.get_properties(),
            {STEP_LOG_NAME: self._pipeline_run._source.where()},
            self.error,
        )
        details["runDefinition"] = {"stepName": self.name, "airflowTaskId": self._task_id}
        return details

    def get_details_with_logs(self) -> dict[str, Any]:
        """``get_details()`` whose ``logFiles`` hold the logs' text rather than where they are."""
        details = self.get_details()
        details["logFiles"] = {STEP_LOG_NAME: self.get_job_log()}
        return details

    def get_job_log(self) -> str:
        """The step's log as text: its script's output and, when it failed, the error."""
        return self._pipeline_run._source.task_log(self._task_id)

    def get_stdout_log(self) -> str:
        """The step's log (stdout and stderr are one stream here, as in Airflow's task log)."""
        return self.get_job_log()

    def get_stderr_log(self) -> str:
        """The tail of the step's error output when it failed, else ""."""
        return self.error or ""

    def get_children(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """A step run has no child runs here (v1 only had them for HyperDrive/AutoML steps)."""
        return iter(())

    # --- outputs --------------------------------------------------------------------------------
    def _outputs(self) -> dict[str, Any]:
        return self._record.get("outputs") or {}

    def get_outputs(self) -> dict[str, StepRunOutput]:
        return {name: self.get_output(name) for name in self._outputs()}

    def get_output(self, name: str) -> StepRunOutput:
        outputs = self._outputs()
        if name not in outputs:
            known = ", ".join(sorted(outputs)) or "none"
            state = "" if self.get_status() == "Finished" else f" (it is {self.get_status()})"
            raise UserErrorException(
                f"step {self.name!r} has no output {name!r}{state} (outputs: {known})"
            )
        return StepRunOutput(self, name, outputs[name])

    def get_output_data(self, name: str) -> PortDataReference:
        return self.get_output(name).get_port_data_reference()

    # --- following ------------------------------------------------------------------------------
    def wait_for_completion(
        self,
        show_output: bool = True,
        timeout_seconds: float = sys.maxsize,
        raise_on_error: bool = True,
    ) -> str:
        """Follow this step until it ends (or its pipeline run ends without starting it)."""
        deadline = time.monotonic() + timeout_seconds
        last = None
        while True:
            self._refresh()
            status = self.get_status()
            if show_output and status != last:
                print(f"StepRun( {self.name} ) Status: {status}")
                last = status
            run_ended = self._pipeline_run.get_status() in TERMINAL
            if status in TERMINAL_STEP or run_ended:
                break
            if time.monotonic() > deadline:
                if raise_on_error:
                    raise MlpipeError(
                        f"StepRun {self.name!r} did not finish within {timeout_seconds} s"
                    )
                return status
            time.sleep(self._pipeline_run._source.poll_interval)
        self._refresh()
        status = self.get_status()
        if status in ("Failed", "Canceled"):
            message = f"StepRun {self.name!r} ({self.id}) ended {status}: {self.error or 'no error recorded'}"
            if show_output:
                print(message)
            if raise_on_error:
                raise ActivityFailedException(message, self.get_details())
        return status

    def __repr__(self) -> str:
        return f"StepRun(name={self.name!r}, status={self.get_status()!r})"


add_service_methods(StepRun, "StepRun")
for _method in ("cancel", "fail", "complete", "tag", "set_tags", "add_properties"):
    from mlpipe_provider.sdk.run_details import not_supported as _not_supported

    setattr(
        StepRun,
        _method,
        _not_supported(
            "StepRun",
            _method,
            "a step's state is Airflow's task state; act on the PipelineRun, "
            "or from inside the step with Run.get_context()",
        ),
    )


class PipelineRun:
    """A submitted pipeline run; ``wait_for_completion`` follows it step by step.

    Its state comes from a run source (``sdk/run_source.py``): ``status.json`` for an embedded
    run, the Airflow REST API for a run on a server (``request.json`` names the server). Both
    give the same shape, so everything below reads one structure.
    """

    type = "azureml.PipelineRun"

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

    # --- v1 attributes ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.id

    @property
    def display_name(self) -> str:
        return self.id

    @property
    def description(self) -> str | None:
        return None

    @property
    def parent(self) -> None:
        return None

    @property
    def tags(self) -> dict[str, str]:
        return self.get_tags()

    @property
    def properties(self) -> dict[str, str]:
        return self.get_properties()

    @property
    def number(self) -> int:
        runs = sorted(
            (r.get("created", 0), r.get("run_id"))
            for r in (
                read_json(f) for f in self.experiment.workspace.runs_dir.glob(f"*/{REQUEST_FILE}")
            )
            if r and r.get("experiment") == self.experiment.name
        )
        return [run_id for _, run_id in runs].index(self.id) + 1

    def get_status(self) -> str:
        return self._status.get("status", "NotStarted")

    @property
    def status(self) -> str:
        return self.get_status()

    # --- steps ----------------------------------------------------------------------------------
    def _steps_in_start_order(self) -> list[StepRun]:
        return [
            StepRun(self, task_id, info)
            for task_id, info in sorted(
                self._status.get("steps", {}).items(), key=lambda kv: kv[1].get("start") or "~"
            )
        ]

    def get_steps(self) -> Iterator[StepRun]:
        """The step runs, newest first as v1 lists a run's children (programs take the first
        as the latest step)."""
        yield from reversed(self._steps_in_start_order())

    def get_children(
        self,
        recursive: bool = False,
        tags: Any = None,
        properties: Any = None,
        type: str | None = None,
        status: str | None = None,
        _rehydrate_runs: bool = True,
    ) -> Iterator[StepRun]:
        """The step runs (v1: a generator), filtered as v1 filters: by ``status``, ``type``, and
        ``properties`` (a key, or a dict of key -> value) of each step run."""
        for step in self.get_steps():
            if status is not None and step.get_status() != status:
                continue
            if type is not None and type != step.type:
                continue
            if properties is not None and not _matches(step.get_properties(), properties):
                continue
            if tags is not None and not _matches(step.get_tags(), tags):
                continue
            yield step

    def find_step_run(self, name: str) -> list[StepRun]:
        return [step for step in self.get_steps() if step.name == name]

    def get_pipeline_output(self, pipeline_output_name: str) -> PortDataReference:
        """The output of that name of whichever step produced it."""
        found = [s for s in self.get_steps() if pipeline_output_name in s._outputs()]
        if not found:
            raise UserErrorException(
                f"PipelineRun {self.id}: no step has an output named {pipeline_output_name!r}"
            )
        return found[0].get_output_data(pipeline_output_name)

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

    # --- details ----------------------------------------------------------------------------------
    def _start_end(self, status: dict[str, Any]) -> tuple[str | None, str | None]:
        steps = status.get("steps", {}).values()
        starts = [s["start"] for s in steps if s.get("start")]
        ends = [s["end"] for s in steps if s.get("end")]
        start = status.get("start") or (min(starts) if starts else None)
        end = status.get("end") or (max(ends) if ends else None)
        if start is None:
            created = self._request.get("created")
            start = dt.datetime.fromtimestamp(created, dt.UTC).isoformat() if created else None
        return start, end

    def get_details(self) -> dict[str, Any]:
        request, status = self._request, self._status
        start, end = self._start_end(status)
        details = base_details(
            self.id,
            None,  # v1: a pipeline run has no single target; its steps do
            status.get("status", "NotStarted"),
            start,
            end
            or status.get("updated")
            and dt.datetime.fromtimestamp(status["updated"], dt.UTC).isoformat(),
            self.get_properties(),
            {"logs/azureml/executionlogs.txt": self._source.where()},
            self._failure_text(status) if status.get("status") in ("Failed", "Canceled") else None,
        )
        details.update(
            {
                "experiment": request.get("experiment"),
                "airflowDagId": request.get("dag_id"),
                "airflowRunId": status.get("airflow_run_id"),
                "parameters": request.get("conf", {}),
                "tags": request.get("tags", {}),
            }
        )
        return details

    def get_details_with_logs(self) -> dict[str, Any]:
        details = self.get_details()
        logs = {}
        for step in self.get_steps():
            text = step.get_job_log()
            if text:
                logs[f"{step.name}/{STEP_LOG_NAME}"] = text
        details["logFiles"] = logs
        return details

    def get_tags(self) -> dict[str, str]:
        return dict(self._request.get("tags", {}))

    def tag(self, key: str, value: str | None = None) -> None:
        self.set_tags({key: "" if value is None else value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        request = self._request
        request.setdefault("tags", {}).update({str(k): str(v) for k, v in tags.items()})
        write_json(self._dir / REQUEST_FILE, request)

    def remove_tags(self, tags: Any) -> None:
        request = self._request
        for key in [tags] if isinstance(tags, str) else list(tags):
            request.setdefault("tags", {}).pop(key, None)
        write_json(self._dir / REQUEST_FILE, request)

    def get_properties(self) -> dict[str, str]:
        props = {
            "azureml.runsource": "azureml.PipelineRun",
            "mlpipe.airflow.dag_id": self._request.get("dag_id", ""),
            **{str(k): str(v) for k, v in (self._request.get("properties") or {}).items()},
        }
        pipeline_id = (self._request.get("tags") or {}).get("azureml.pipelineid")
        if pipeline_id:
            props["azureml.pipelineid"] = pipeline_id
        if self._request.get("server"):
            props["mlpipe.airflow.server"] = self._request["server"]
            props["mlpipe.airflow.run_id"] = self._request.get("airflow_run_id", "")
        return props

    def add_properties(self, properties: dict[str, Any]) -> None:
        """Properties are immutable in v1: adding a key that exists with another value fails."""
        request = self._request
        current = request.setdefault("properties", {})
        for key, value in properties.items():
            if key in current and current[key] != str(value):
                raise UserErrorException(f"run property {key!r} is already set to {current[key]!r}")
            current[str(key)] = str(value)
        write_json(self._dir / REQUEST_FILE, request)

    def get_portal_url(self) -> str:
        """Where to look at the run: the Airflow UI for a server run, else its log file."""
        return self._source.where()

    # --- publishing -------------------------------------------------------------------------------
    def publish_pipeline(
        self,
        name: str,
        description: str | None,
        version: str | None,
        continue_on_step_failure: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Publish the pipeline this run ran (its graph is kept with the run)."""
        from mlpipe_provider.sdk.published import PublishedPipeline, publish_lowered

        graph = read_json(self._dir / GRAPH_FILE)
        pipeline_id = self.get_tags().get("azureml.pipelineid")
        if graph is None and pipeline_id:
            published = PublishedPipeline.get(self.experiment.workspace, pipeline_id)
            return publish_lowered(
                self.experiment.workspace,
                published._lowered(),
                name,
                description,
                version,
                continue_on_step_failure,
            )
        if graph is None:
            raise UserErrorException(
                f"PipelineRun {self.id}: the pipeline it ran was not kept with the run "
                "(runs started by a schedule or before this version); publish the Pipeline itself"
            )
        return publish_lowered(
            self.experiment.workspace,
            services.compiler().lowered_from_json(graph),
            name,
            description,
            version,
            continue_on_step_failure,
        )

    @staticmethod
    def get(workspace: Any, run_id: str, _service_endpoint: Any = None) -> PipelineRun:
        """A pipeline run by id, whichever experiment it belongs to (v1's ``PipelineRun.get``)."""
        return workspace.get_run(run_id)

    @staticmethod
    def get_pipeline_runs(workspace: Any, pipeline_id: str) -> list[PipelineRun]:
        """Runs of a published pipeline, newest first."""
        runs = []
        if workspace.runs_dir.is_dir():
            for request_file in workspace.runs_dir.glob(f"*/{REQUEST_FILE}"):
                data = read_json(request_file)
                if data and (data.get("tags") or {}).get("azureml.pipelineid") == pipeline_id:
                    runs.append((data.get("created", 0), data["run_id"], data["experiment"]))
        return [
            PipelineRun(Experiment(workspace, exp, _skip_name_validation=True), run_id)
            for _, run_id, exp in sorted(runs, reverse=True)
        ]

    def get_graph(self) -> Any:
        raise NotSupportedError(
            "PipelineRun.get_graph is not supported by mlpipe: the run's graph is its Airflow DAG "
            f"({self._request.get('dag_id')!r}); see it in the Airflow UI or the DAG file "
            f"{self._request.get('dag_file')!r}"
        )

    def save(self, path: str | None = None, format: Any = None) -> None:
        raise NotSupportedError(
            "PipelineRun.save (pipeline YAML) is not supported by mlpipe: the run's DAG file "
            f"{self._request.get('dag_file')!r} is the saved form; publish_pipeline() keeps it too"
        )

    # --- following --------------------------------------------------------------------------------
    def wait_for_completion(
        self,
        show_output: bool = True,
        timeout_seconds: float = sys.maxsize,
        raise_on_error: bool = True,
    ) -> str:
        """Poll the run's state; with ``show_output`` print each step's state as it changes.

        A run that ends Failed or Canceled raises v1's ``ActivityFailedException`` (when
        ``raise_on_error``) naming each failed step with the tail of its error; ``show_output``
        prints the same before returning or raising.
        """
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
        failure = self._failure_text(status) if final != "Finished" else None
        if show_output:
            print(f"PipelineRun Status: {final}")
            if failure:
                print(failure)
        if failure is not None and raise_on_error:
            raise ActivityFailedException(
                f"PipelineRun {self.id} ended {final}:\n{failure}", self.get_details()
            )
        return final

    def _failure_text(self, status: dict[str, Any]) -> str:
        """Each failed step's name and error tail; else the run's own error (a failure before
        any step started); else where to look."""
        lines = []
        for task_id, info in sorted(status.get("steps", {}).items()):
            if info.get("status") == "Failed":
                name = (
                    (info.get("record") or {}).get("step_name")
                    or info.get("display_name")
                    or task_id
                )
                lines.append(
                    f"step {name!r} failed:\n{_indent(info.get('error') or '(no error recorded; see ' + self._source.where() + ')')}"
                )
        if lines:
            return "\n".join(lines)
        if status.get("error"):
            return str(status["error"])
        return f"no step failed; see {self._source.where()}"

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

    def fail(self, *args: Any, **kwargs: Any) -> None:
        """v1 marks a run failed; here that is cancelling it (Airflow marks the DAG run failed)."""
        self.cancel()

    def __repr__(self) -> str:
        return f"PipelineRun(Experiment: {self.experiment.name}, Id: {self.id}, Status: {self.get_status()})"


add_service_methods(PipelineRun, "PipelineRun")


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in str(text).splitlines())


def _matches(values: dict[str, str], wanted: Any) -> bool:
    if isinstance(wanted, str):
        return wanted in values
    if isinstance(wanted, dict):
        return all(values.get(k) == v for k, v in wanted.items())
    return all(k in values for k in wanted)


class ScriptRun(PipelineRun):
    """The run ``Experiment.submit(ScriptRunConfig)`` returns (v1's ``ScriptRun``).

    Here it is a pipeline run of one step, so everything a ``PipelineRun`` does works on it;
    ``get_metrics()`` is that step's metrics, as v1's were the script's.
    """

    type = "azureml.scriptrun"

    def __repr__(self) -> str:
        return f"ScriptRun(Experiment: {self.experiment.name}, Id: {self.id}, Status: {self.get_status()})"
