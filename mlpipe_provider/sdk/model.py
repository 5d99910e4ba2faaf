"""``Model``: v1's registered model (``azureml.core.model.Model``), as pipeline steps use it.

A view on the workspace's model registry (``mlpipe_provider.model_registry``): registering copies
the files to the default datastore and creates an immutable, numbered version; reading one inside
a step (``Model.get_model_path``, ``Model(ws, name)``) is noted in the step's record so a newer
version makes that step run again rather than reuse a result computed with the old one
(docs/models.md). Deployment (``Model.deploy``, ``package``, profiling) is Azure's inference
service and stays out: it raises ``NotSupportedError`` saying what to use instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlpipe_provider import model_registry
from mlpipe_provider.config import STEP_WORKSPACE_ENV
from mlpipe_provider.errors import NotSupportedError, UserErrorException

_DEPLOY_NOTE = (
    "deploying models is Azure ML's inference service; serve the model with your own web "
    "service or batch-score it with a PythonScriptStep / ParallelRunStep"
)


def _matches(values: dict[str, Any], wanted: Any, what: str) -> bool:
    """v1's filter: a list of keys, or of ``[key, value]`` pairs (a dict is taken as pairs)."""
    if not wanted:
        return True
    items = wanted.items() if isinstance(wanted, dict) else wanted
    if isinstance(items, str):
        items = [items]
    for item in items:
        if isinstance(item, str):
            if item not in values:
                return False
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            if str(values.get(str(item[0]), object())) != str(item[1]):
                return False
        else:
            raise UserErrorException(
                f"Model: {what} filter items are a key or a [key, value] pair, got {item!r}"
            )
    return True


def _step_workspace() -> Any:
    """The workspace a running step belongs to (the worker names it), else the one
    ``Workspace.from_config()`` finds, as v1 scripts outside a run expect."""
    from mlpipe_provider.config import CONFIG_FILE_NAME
    from mlpipe_provider.sdk.workspace import Workspace

    folder = os.environ.get(STEP_WORKSPACE_ENV)
    if not folder:
        return Workspace.from_config()
    if not (Path(folder) / CONFIG_FILE_NAME).is_file():
        raise UserErrorException(
            f"Model.get_model_path: the step's workspace {folder!r} is not visible where this "
            "step runs (a container step sees only its inputs and outputs); pass the model to "
            "the step as an input instead (docs/models.md)"
        )
    return Workspace(_workspace_dir=folder)


class Model:
    """A registered model version: ``Model(ws, name)`` (latest), ``Model(ws, name, version=2)``,
    ``Model(ws, id="name:2")``; optionally the latest with the given tags and properties."""

    def __init__(
        self,
        workspace: Any,
        name: str | None = None,
        id: str | None = None,  # noqa: A002 - v1's parameter name
        tags: Any = None,
        properties: Any = None,
        version: int | None = None,
        run_id: str | None = None,
        model_framework: str | None = None,
        expand: bool = True,
        sas_expiry_in_seconds: int | None = None,
        **kwargs: Any,
    ):
        """``expand`` and ``sas_expiry_in_seconds`` are Azure service knobs: accepted, no effect."""
        self.workspace = workspace
        if id is not None:
            name, _, number = str(id).partition(":")
            version = int(number) if number else version
        if not name:
            raise UserErrorException("Model(workspace, ...): give name= or id=")
        if version is not None:
            record = model_registry.get(workspace.directory, name, version)
        else:
            candidates = [
                r
                for r in model_registry.versions(workspace.directory, name)
                if _matches(r.get("tags") or {}, tags, "tags")
                and _matches(r.get("properties") or {}, properties, "properties")
                and (run_id is None or r.get("run_id") == run_id)
                and (model_framework is None or r.get("model_framework") == model_framework)
            ]
            if not candidates:
                model_registry.get(workspace.directory, name)  # says what is registered
                raise UserErrorException(
                    f"no version of model {name!r} matches tags={tags!r}, properties={properties!r}"
                )
            record = candidates[-1]
        model_registry.note_resolved(record, version)
        self._load(record)

    @classmethod
    def _from_record(cls, workspace: Any, record: dict[str, Any]) -> Model:
        model = cls.__new__(cls)
        model.workspace = workspace
        model._load(record)
        return model

    def _load(self, record: dict[str, Any]) -> None:
        self._record = record
        self.name: str = record["name"]
        self.version: int = int(record["version"])
        self.id: str = record["id"]
        self.description: str | None = record.get("description")
        self.tags: dict[str, str] = dict(record.get("tags") or {})
        self.properties: dict[str, str] = dict(record.get("properties") or {})
        self.created_time = datetime.fromtimestamp(record.get("created") or 0, UTC)
        self.run_id: str | None = record.get("run_id")
        self.experiment_name: str | None = record.get("experiment_name")
        self.model_framework: str | None = record.get("model_framework")
        self.model_framework_version: str | None = record.get("model_framework_version")
        self.digest: str = record["digest"]
        self.datastore_name: str = record["datastore"]
        self.path: str = record["path"]

    @property
    def url(self) -> str:
        """Where the files are: ``<datastore>/<path>`` (v1 gave an Azure blob URL)."""
        return f"{self.datastore_name}/{self.path}"

    @property
    def created_by(self) -> dict[str, Any] | None:
        return None

    # --- registering ------------------------------------------------------------------------
    @staticmethod
    def register(
        workspace: Any,
        model_path: str | os.PathLike,
        model_name: str,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        datasets: Any = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        child_paths: list[str] | None = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
        **kwargs: Any,
    ) -> Model:
        """Register a file or folder as the next version of ``model_name``.

        ``child_paths`` bundles only those files of the ``model_path`` folder, as v1.
        ``datasets``, the sample datasets and ``resource_configuration`` describe the model for
        Azure's deployment service: accepted, and kept only as names in the record's extras.
        """
        extra: dict[str, Any] = {}
        if model_framework is not None:
            extra["model_framework"] = str(model_framework)
        if model_framework_version is not None:
            extra["model_framework_version"] = str(model_framework_version)
        for key, value in (
            ("run_id", kwargs.get("_run_id")),
            ("experiment_name", kwargs.get("_experiment_name")),
        ):
            if value:
                extra[key] = str(value)
        if datasets:
            extra["datasets"] = [
                [str(kind), str(getattr(ds, "name", None) or getattr(ds, "id", ds))]
                for kind, ds in datasets
            ]
        source = Path(model_path)
        if child_paths:
            with tempfile.TemporaryDirectory(prefix="mlpipe-model-") as tmp:
                bundle = Path(tmp) / source.resolve().name
                for child in child_paths:
                    src = source / child
                    if not src.is_file():
                        raise UserErrorException(
                            f"Model.register: child path {child!r} is not a file in {str(source)!r}"
                        )
                    (bundle / child).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, bundle / child)
                record = model_registry.register(
                    workspace.directory,
                    model_name,
                    bundle,
                    config=workspace.settings,
                    tags=tags,
                    properties=properties,
                    description=description,
                    extra=extra,
                )
        else:
            record = model_registry.register(
                workspace.directory,
                model_name,
                source,
                config=workspace.settings,
                tags=tags,
                properties=properties,
                description=description,
                extra=extra,
            )
        model = Model._from_record(workspace, record)
        print(f"Registering model {model_name}")
        return model

    # --- finding ------------------------------------------------------------------------------
    @staticmethod
    def list(
        workspace: Any,
        name: str | None = None,
        tags: Any = None,
        properties: Any = None,
        run_id: str | None = None,
        latest: bool = False,
        dataset_id: str | None = None,
        expand: bool = True,
        page_count: int = 255,
        model_framework: str | None = None,
    ) -> list[Model]:
        """Registered versions, newest first, filtered as v1 filters (``latest``: one per name)."""
        records = (
            model_registry.versions(workspace.directory, name)
            if name
            else model_registry.all_versions(workspace.directory)
        )
        chosen = [
            r
            for r in records
            if _matches(r.get("tags") or {}, tags, "tags")
            and _matches(r.get("properties") or {}, properties, "properties")
            and (run_id is None or r.get("run_id") == run_id)
            and (model_framework is None or r.get("model_framework") == model_framework)
        ]
        if latest:
            newest: dict[str, dict[str, Any]] = {}
            for record in chosen:
                newest[record["name"]] = record
            chosen = list(newest.values())
        chosen.sort(key=lambda r: (r.get("created") or 0, int(r["version"])), reverse=True)
        return [Model._from_record(workspace, r) for r in chosen]

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: Any = None) -> str:
        """The local path of a registered model's file or folder (v1 scripts call this in
        ``init()``). Inside a step the step's workspace is used and the version read is noted
        for reuse; outside one, ``_workspace`` or ``Workspace.from_config()``."""
        workspace = _workspace if _workspace is not None else _step_workspace()
        record = model_registry.get(workspace.directory, model_name, version)
        path = model_registry.local_path(workspace.directory, record, workspace.settings)
        model_registry.note_resolved(record, version)
        return str(path)

    # --- using one ----------------------------------------------------------------------------
    def download(
        self, target_dir: str | os.PathLike = ".", exist_ok: bool = False, exists_ok: Any = None
    ) -> str:
        """Copy the model's file or folder into ``target_dir``; its path there."""
        if exists_ok is not None:  # v1's deprecated spelling
            exist_ok = bool(exists_ok)
        return str(
            model_registry.copy_to(
                self.workspace.directory,
                self._record,
                target_dir,
                exist_ok=exist_ok,
                config=self.workspace.settings,
            )
        )

    def get_sas_urls(self) -> dict[str, str]:
        """v1's download URLs: here the files' places on the datastore (no SAS tokens)."""
        if self._record.get("is_directory"):
            return {rel: f"{self.url}/{rel}" for rel in self._record["files"]}
        return {Path(self.path).name: self.url}

    def serialize(self) -> dict[str, Any]:
        return dict(self._record)

    @staticmethod
    def deploy(*args: Any, **kwargs: Any) -> Any:
        """Azure's inference service: ``NotSupportedError`` saying what to use instead."""
        raise NotSupportedError(f"Model.deploy is not supported by mlpipe ({_DEPLOY_NOTE})")

    @staticmethod
    def package(*args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError(f"Model.package is not supported by mlpipe ({_DEPLOY_NOTE})")

    @staticmethod
    def profile(*args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError(f"Model.profile is not supported by mlpipe ({_DEPLOY_NOTE})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.id == self.id and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, version={self.version}, tags={self.tags}, properties={self.properties})"
