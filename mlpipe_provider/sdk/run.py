"""``Run``: what a step script sees through ``Run.get_context()``.

Inside a step the operator sets environment variables naming the run and the metrics file; the
script's ``run.log(...)`` calls append there and the operator collects them. Outside a pipeline the
context is an offline run that prints what it would have logged, as in v1.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider.metrics import METRICS_FILE_ENV, aggregate, append_metric, read_records

RUN_ID_ENV = "MLPIPE_RUN_ID"
PARENT_RUN_ID_ENV = "MLPIPE_PARENT_RUN_ID"
STEP_NAME_ENV = "MLPIPE_STEP_NAME"
EXPERIMENT_ENV = "MLPIPE_EXPERIMENT"
ARTIFACTS_DIR_ENV = "MLPIPE_ARTIFACTS_DIR"
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def _safe_file_stem(name: str) -> str:
    return _UNSAFE_FILE_CHARS.sub("_", str(name)).strip(".") or "image"


class _ExperimentRef:
    """The experiment of the step run a script runs in (v1's ``run.experiment``)."""

    def __init__(self, name: str):
        self.name = name

    @property
    def workspace(self) -> Any:
        """The workspace the step runs against, as v1 scripts reach it (``run.experiment.workspace``).

        The worker tells the step where that workspace is; where the step cannot see it (an
        offline run, a step inside a container), this says so rather than open an empty one.
        """
        from mlpipe_provider.config import CONFIG_FILE_NAME, STEP_WORKSPACE_ENV
        from mlpipe_provider.errors import UserErrorException
        from mlpipe_provider.sdk.workspace import Workspace

        folder = os.environ.get(STEP_WORKSPACE_ENV)
        if not folder:
            raise UserErrorException(
                "run.experiment.workspace: this run is not a pipeline step run (an offline run "
                "has no workspace); use Workspace.from_config()"
            )
        if not (Path(folder) / CONFIG_FILE_NAME).is_file():
            raise UserErrorException(
                f"run.experiment.workspace: the step's workspace {folder!r} is not visible where "
                "this step runs (a container step sees only its inputs and outputs)"
            )
        return Workspace(_workspace_dir=folder)

    def __repr__(self) -> str:
        return f"Experiment(name={self.name!r})"


class Run:
    """A run: the current step run inside a pipeline, or an offline run elsewhere."""

    def __init__(
        self,
        experiment: Any = None,
        run_id: str | None = None,
        outputs: Any = None,
        *,
        _metrics_file: str | None = None,
        _offline: bool = False,
        _parent_id: str | None = None,
        _name: str | None = None,
        _artifacts_dir: str | None = None,
    ):
        self.id = run_id or f"OfflineRun_{uuid.uuid4()}"
        self.experiment = experiment
        self._metrics_file = _metrics_file
        self._offline = _offline
        self._parent_id = _parent_id
        self.name = _name
        self.display_name = _name
        self._artifacts_dir = _artifacts_dir
        self._tags: dict[str, str] = {}
        self._properties: dict[str, str] = {}
        self._offline_records: list[dict[str, Any]] = []

    @classmethod
    def get_context(
        cls, allow_offline: bool = True, used_for_context_manager: bool = False, **kwargs: Any
    ) -> Run:
        metrics_file = os.environ.get(METRICS_FILE_ENV)
        if metrics_file:
            return cls(
                experiment=_ExperimentRef(os.environ.get(EXPERIMENT_ENV, "")),
                run_id=os.environ.get(RUN_ID_ENV),
                _metrics_file=metrics_file,
                _parent_id=os.environ.get(PARENT_RUN_ID_ENV),
                _name=os.environ.get(STEP_NAME_ENV),
                _artifacts_dir=os.environ.get(ARTIFACTS_DIR_ENV),
            )
        if not allow_offline:
            from mlpipe_provider.errors import UserErrorException

            raise UserErrorException("Run.get_context(allow_offline=False) outside a pipeline step")
        return cls(experiment=_ExperimentRef("offline"), _offline=True)

    @staticmethod
    def get(workspace: Any, run_id: str) -> Any:
        """A submitted run by id (v1's ``Run.get``): the ``PipelineRun`` it is here."""
        return workspace.get_run(run_id)

    @staticmethod
    def list(experiment: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """The experiment's runs, newest first (v1's ``Run.list``)."""
        return list(experiment.get_runs(*args, **kwargs))

    # --- logging ---------------------------------------------------------------------------
    def _record(
        self, kind: str, name: str, value: Any, description: str = "", **extra: Any
    ) -> None:
        record = {
            "kind": kind,
            "name": name,
            "value": value,
            "description": description,
            "time": time.time(),
            **extra,
        }
        if self._offline:
            print(f"Attempted to log {kind} metric {name}:\n{value}")
            self._offline_records.append(record)
            return
        append_metric(self._metrics_file, record)

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        self._record("scalar", name, value, description, step=step)

    def log_list(self, name: str, value: list, description: str = "") -> None:
        self._record("list", name, list(value), description)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        self._record("row", name, dict(kwargs), description or "")

    def log_table(self, name: str, value: dict, description: str = "") -> None:
        self._record("table", name, dict(value), description)

    def log_image(
        self, name: str, path: Any = None, plot: Any = None, description: str = ""
    ) -> None:
        """Keep the image with the step's artifacts; the metric holds its file name.

        ``path`` is a file path or a binary stream, ``plot`` a matplotlib figure or ``pyplot``
        (as v1). The file name comes from the metric name with unsafe characters replaced, so a
        name like ``"plots/loss"`` cannot write outside the step's artifacts folder.
        """
        from mlpipe_provider.errors import UserErrorException

        if (path is None) == (plot is None):
            raise UserErrorException(
                f"Run.log_image({name!r}): give exactly one of path= (a file or stream) or plot="
            )
        suffix = ".png"
        if isinstance(path, (str, os.PathLike)):
            suffix = Path(path).suffix.lower() or suffix
        file_name = f"{_safe_file_stem(name)}{suffix}"
        target_dir = Path(self._artifacts_dir) if self._artifacts_dir else None
        if target_dir is None:
            self._record("image", name, str(path) if plot is None else file_name, description)
            return
        target_dir.mkdir(parents=True, exist_ok=True)
        stored = target_dir / file_name
        if plot is not None:
            plot.savefig(stored)
        elif hasattr(path, "read"):
            stored.write_bytes(path.read())
        else:
            shutil.copyfile(path, stored)
        self._record("image", name, stored.name, description)

    def log_confusion_matrix(self, name: str, value: Any, description: str = "") -> None:
        self._record("table", name, {"confusion_matrix": value}, description)

    def log_accuracy_table(self, name: str, value: Any, description: str = "") -> None:
        self._record("table", name, {"accuracy_table": value}, description)

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        records = self._offline_records if self._offline else read_records(self._metrics_file)
        metrics = aggregate(records)
        return (
            {name: metrics[name]}
            if name is not None and name in metrics
            else ({} if name else metrics)
        )

    # --- datasets ------------------------------------------------------------------------
    @property
    def input_datasets(self) -> dict[str, Any]:
        """The step's dataset inputs by name: a local path for a mounted or downloaded file
        dataset (as v1), a dataset object over the local files for direct and tabular inputs."""
        if self._offline:
            return {}
        from mlpipe_provider.sdk.dataset import input_datasets_from_env

        return input_datasets_from_env()

    # --- models -------------------------------------------------------------------------
    def register_model(
        self,
        model_name: str,
        model_path: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        description: str | None = None,
        datasets: Any = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Register a file or folder this run wrote as a model (v1: ``outputs/model.pkl``).

        v1's ``model_path`` is a path among the run's uploaded files; here it is looked up among
        the run's artifacts (``run.upload_file``) first, then relative to the folder the script
        runs in (where v1's ``./outputs`` convention writes). Without ``model_path``, v1 uses the
        model name as the path. The version records this run's id and experiment.
        """
        from mlpipe_provider.errors import UserErrorException
        from mlpipe_provider.sdk.model import Model

        relative = model_path or model_name
        candidates = [Path(relative)]
        if self._artifacts_dir:
            candidates.insert(0, Path(self._artifacts_dir) / relative)
        source = next((c for c in candidates if c.exists()), None)
        if source is None:
            raise UserErrorException(
                f"run.register_model({model_name!r}): model_path {relative!r} is neither among "
                f"this run's uploaded files nor under {os.getcwd()!r}"
            )
        workspace = None if self._offline else self.experiment.workspace
        if workspace is None:
            raise UserErrorException(
                "run.register_model: an offline run has no workspace; use "
                "Model.register(Workspace.from_config(), ...)"
            )
        return Model.register(
            workspace,
            source,
            model_name,
            tags=tags,
            properties=properties,
            description=description,
            datasets=datasets,
            model_framework=model_framework,
            model_framework_version=model_framework_version,
            _run_id=self.id,
            _experiment_name=self.experiment.name,
        )

    # --- tags and properties -----------------------------------------------------------
    def tag(self, key: str, value: str | None = None) -> None:
        self._tags[key] = "" if value is None else str(value)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.tag(key, value)

    def get_tags(self) -> dict[str, str]:
        return dict(self._tags)

    def add_properties(self, properties: dict[str, str]) -> None:
        self._properties.update({str(k): str(v) for k, v in properties.items()})

    def get_properties(self) -> dict[str, str]:
        return dict(self._properties)

    @property
    def parent(self) -> Run | None:
        if self._parent_id is None:
            return None
        return Run(self.experiment, self._parent_id, _metrics_file=None, _offline=True)

    def get_status(self) -> str:
        return "Running"

    def complete(self, _set_status: bool = True) -> None:
        pass

    def fail(
        self, error_details: Any = None, error_code: Any = None, _set_status: bool = True
    ) -> None:
        pass

    def upload_file(self, name: str, path_or_stream: str) -> None:
        if self._artifacts_dir:
            dest = Path(self._artifacts_dir) / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path_or_stream, dest)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, name={self.name!r})"
