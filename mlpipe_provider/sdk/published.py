"""``PublishedPipeline`` and ``PipelineEndpoint``: pipelines frozen for others to run.

Publishing compiles the pipeline into a DAG of its own in the workspace's DAG folder, named after
the pipeline and a short digest of its content (``<name>__<graph id>``). A published pipeline is
immutable, so a new version is a new DAG; publishing identical content again gives the same DAG
(a new registry record pointing at it). Airflow's own DAG versioning, which tracks the changes of
one dag_id, is what an experiment's submit DAG uses instead.

The registry is the workspace folder: ``published/<id>.json`` per published pipeline,
``published/graphs/<graph id>.json`` for the lowered pipeline (what schedules render their DAGs
from), and ``endpoints/<id>.json`` per endpoint. Any process can read it.
"""

from __future__ import annotations

import getpass
import re
import time
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider.embedded.status import read_json, write_json
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.records import ACTIVE, DISABLED, ENDPOINTS, PUBLISHED
from mlpipe_provider.rest import ENDPOINT_ID_PATH, SUBMIT_PATH, URL_PREFIX
from mlpipe_provider.sdk import services

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,254}$")


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserErrorException(
            f"{what} name {name!r} must be 1-255 letters, digits, '_', '-', '.' or spaces, "
            "starting with a letter or digit"
        )
    return name


def _published_dir(workspace: Any) -> Path:
    return workspace._dir / "published"


def endpoint_url(workspace: Any, route: str, dag_file: Path) -> str:
    """The v1 REST address that submits a run (``POST`` with v1's body and a bearer token).

    ``route`` is the path after ``/mlpipe`` (``mlpipe_provider/rest``: the provider's plugin
    serves it in the Airflow API server). With no Airflow server in the workspace config there
    is none; the string then says where the DAG is and that ``submit`` runs it embedded.
    """
    server = workspace._config.airflow
    if server is not None:
        return f"{server.url.rstrip('/')}{URL_PREFIX}{route}"
    return f"embedded:{dag_file}"


def _check_data_paths(workspace: Any, parameters: dict[str, Any], conf: dict[str, Any]) -> None:
    """DataPath values must name a datastore of this workspace (caught here, not mid-run)."""
    from mlpipe_provider.runtime.pipeline_parameters import check_data_path_datastores

    check_data_path_datastores(
        parameters, conf, workspace._config.datastores, what="pipeline_parameters"
    )


# --- publishing ---------------------------------------------------------------------------------
def publish_pipeline(
    pipeline: Any,
    name: str | None,
    description: str | None,
    version: str | None,
    continue_on_step_failure: bool | None,
) -> PublishedPipeline:
    """``Pipeline.publish``: lowering and rendering are the client's
    (``mlpipe_provider/client/publish.py``); the record is written by ``record_published``."""
    name = _check_name(name or pipeline._name or "published_pipeline", "published pipeline")
    if version is not None and not isinstance(version, str):
        raise UserErrorException(f"publish: version must be a string, got {version!r}")
    return services.client().publish_pipeline(
        pipeline, name, description, version, continue_on_step_failure
    )


def publish_lowered(
    ws: Any,
    lowered: Any,
    name: str,
    description: str | None,
    version: str | None,
    continue_on_step_failure: bool | None,
) -> PublishedPipeline:
    """Publish an already lowered pipeline: ``Pipeline.publish`` and ``PipelineRun.publish_pipeline``
    (which publishes the graph its run ran, kept with the run) both end here."""
    name = _check_name(name, "published pipeline")
    if version is not None and not isinstance(version, str):
        raise UserErrorException(f"publish: version must be a string, got {version!r}")
    return services.client().publish_lowered(
        ws, lowered, name, description, version, continue_on_step_failure
    )


def record_published(
    ws: Any,
    *,
    name: str,
    description: str | None,
    version: str | None,
    graph_id: str,
    graph: dict[str, Any],
    dag_id: str,
    dag_file: Path,
    pools_file: Path | None,
    parameters: dict[str, Any],
    step_names: list[str],
    continue_on_step_failure: bool | None,
) -> PublishedPipeline:
    """Write the record of a pipeline the client just published (its DAG file is written), and
    its graph (the lowered pipeline as JSON) unless a publish of the same graph kept it already."""
    graph_file = _published_dir(ws) / "graphs" / f"{graph_id}.json"
    if not graph_file.is_file():
        write_json(graph_file, graph)
    record = {
        "id": str(uuid.uuid4()),
        "name": name,
        "description": description,
        "version": version,
        "status": ACTIVE,
        "graph_id": graph_id,
        "dag_id": dag_id,
        "dag_file": dag_file.relative_to(ws._dir).as_posix(),
        "pools_file": (pools_file.relative_to(ws._dir).as_posix() if pools_file else None),
        "parameters": parameters,
        "step_names": step_names,
        "continue_on_step_failure": continue_on_step_failure,
        "published_by": getpass.getuser(),
        "created": time.time(),
    }
    PUBLISHED.save(ws._dir, record)
    return PublishedPipeline(ws, record)


class PublishedPipeline:
    """A published pipeline: an immutable DAG that anyone can submit with their parameters."""

    def __init__(self, workspace: Any, record: dict[str, Any]):
        self._workspace = workspace
        self._record = record

    # --- registry -------------------------------------------------------------------------------
    @staticmethod
    def get(
        workspace: Any, id: str, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> PublishedPipeline:
        if not isinstance(id, str) or not re.fullmatch(r"[0-9a-f-]{36}", id):
            raise UserErrorException(f"PublishedPipeline id {id!r} is not a published pipeline id")
        record = PUBLISHED.get(
            workspace._dir, id, f"no published pipeline {id!r} in workspace {workspace.name!r}"
        )
        return PublishedPipeline(workspace, record)

    @staticmethod
    def list(
        workspace: Any, active_only: bool = True, _service_endpoint: Any = None
    ) -> list[PublishedPipeline]:
        """Published pipelines of the workspace, newest first."""
        found = [
            PublishedPipeline(workspace, r)
            for r in PUBLISHED.list(workspace._dir)
            if not active_only or r["status"] == ACTIVE
        ]
        return sorted(found, key=lambda p: (-p._record.get("created", 0), p.id))

    @staticmethod
    def get_all(
        workspace: Any, active_only: bool = True, _service_endpoint: Any = None
    ) -> list[PublishedPipeline]:
        """Deprecated in v1 in favour of ``list``."""
        return PublishedPipeline.list(workspace, active_only=active_only)

    def _reload(self) -> None:
        self._record = PUBLISHED.find(self._workspace._dir, self.id) or self._record

    def _set_status(self, status: str) -> None:
        self._record = PUBLISHED.update(
            self._workspace._dir, self.id, lambda record: {**record, "status": status}
        )

    # --- v1 attributes ----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._record["id"]

    @property
    def name(self) -> str:
        return self._record["name"]

    @property
    def description(self) -> str | None:
        return self._record.get("description")

    @property
    def version(self) -> str | None:
        return self._record.get("version")

    @property
    def status(self) -> str:
        return self._record["status"]

    @property
    def graph_id(self) -> str:
        return self._record["graph_id"]

    @property
    def published_by(self) -> str:
        return self._record.get("published_by", "")

    @property
    def continue_on_step_failure(self) -> bool | None:
        return self._record.get("continue_on_step_failure")

    @property
    def total_run_steps(self) -> int:
        return len(self._record.get("step_names", []))

    @property
    def dag_id(self) -> str:
        """The Airflow DAG this published pipeline runs as (an mlpipe addition)."""
        return self._record["dag_id"]

    @property
    def _dag_file(self) -> Path:
        return self._workspace._dir / self._record["dag_file"]

    @property
    def endpoint(self) -> str:
        route = SUBMIT_PATH.format(pipeline_id=self.id)
        return endpoint_url(self._workspace, route, self._dag_file)

    def get_step_names(self) -> list[str]:
        return list(self._record.get("step_names", []))

    def enable(self) -> None:
        self._set_status(ACTIVE)

    def disable(self) -> None:
        """Refuse new submits (v1); runs already started go on."""
        self._set_status(DISABLED)

    def get_graph(self, _workflow_provider: Any = None) -> Any:
        from mlpipe_provider.errors import NotSupportedError

        raise NotSupportedError(
            "PublishedPipeline.get_graph is not supported by mlpipe: the pipeline's graph is its "
            f"Airflow DAG {self.dag_id!r} (file {self._record['dag_file']!r}); see the Airflow UI"
        )

    def save(self, path: str | None = None, _workflow_provider: Any = None) -> None:
        from mlpipe_provider.errors import NotSupportedError

        raise NotSupportedError(
            "PublishedPipeline.save (pipeline YAML) is not supported by mlpipe: its DAG file "
            f"{self._record['dag_file']!r} in the workspace is the saved form"
        )

    # --- running ----------------------------------------------------------------------------------
    def submit(
        self,
        workspace: Any,
        experiment_name: str,
        pipeline_parameters: dict | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
        parent_run_id: str | None = None,
        continue_on_step_failure: bool | None = None,
    ) -> Any:
        from mlpipe_provider.sdk.experiment import Experiment

        return self._submit_to(
            Experiment(workspace, experiment_name),
            pipeline_parameters=pipeline_parameters,
            continue_on_step_failure=continue_on_step_failure,
        )

    def _check_conf(self, pipeline_parameters: dict | None) -> dict[str, Any]:
        from mlpipe_provider.sdk.experiment import check_parameters

        conf = check_parameters(self._record["parameters"], pipeline_parameters, self._workspace)
        _check_data_paths(self._workspace, self._record["parameters"], conf)
        return conf

    def _submit_to(
        self,
        experiment: Any,
        tags: dict | None = None,
        pipeline_parameters: dict | None = None,
        continue_on_step_failure: bool | None = None,
        regenerate_outputs: bool = False,
        _tags: dict | None = None,
        **kwargs: Any,
    ) -> Any:
        from mlpipe_provider.sdk.experiment import start_run

        self._reload()
        if self.status != ACTIVE:
            raise UserErrorException(
                f"published pipeline {self.name!r} ({self.id}) is {self.status}; enable() it to submit"
            )
        if not self._dag_file.is_file():
            raise UserErrorException(
                f"published pipeline {self.name!r}: its DAG file {str(self._dag_file)!r} is missing"
            )
        conf = self._check_conf(pipeline_parameters)
        if continue_on_step_failure is None:
            continue_on_step_failure = bool(self.continue_on_step_failure)
        pools = self._record.get("pools_file")
        return start_run(
            experiment,
            self.dag_id,
            self._dag_file,
            self._workspace._dir / pools if pools else None,
            conf,
            tags={**(tags or {}), "azureml.pipelineid": self.id, **(_tags or {})},
            regenerate_outputs=regenerate_outputs,
            continue_on_step_failure=continue_on_step_failure,
        )

    def _lowered(self) -> Any:
        data = read_json(_published_dir(self._workspace) / "graphs" / f"{self.graph_id}.json")
        if data is None:
            raise UserErrorException(
                f"published pipeline {self.name!r}: its graph record {self.graph_id} is missing"
            )
        return services.compiler().lowered_from_json(data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublishedPipeline) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return (
            f"PublishedPipeline(Name: {self.name}, Id: {self.id}, Status: {self.status}, "
            f"Endpoint: {self.endpoint})"
        )


# --- endpoints ------------------------------------------------------------------------------------
class PipelineIdVersion:
    """One version of a pipeline endpoint: a published pipeline id and its version string.

    ``pipeline`` is that version's ``PublishedPipeline`` (read when asked for), so
    ``[(v.version, v.pipeline.name) for v in endpoint.list_versions()]`` works as in v1.
    """

    def __init__(self, pipeline_id: str, version: str, workspace: Any = None):
        self.pipeline_id = pipeline_id
        self.version = version
        self._workspace = workspace

    @property
    def pipeline(self) -> PublishedPipeline:
        if self._workspace is None:
            raise UserErrorException(
                f"PipelineIdVersion {self.version!r}: no workspace to look up pipeline "
                f"{self.pipeline_id} in; use PublishedPipeline.get(ws, pipeline_id)"
            )
        return PublishedPipeline.get(self._workspace, self.pipeline_id)

    def __repr__(self) -> str:
        return f"PipelineIdVersion(pipeline_id={self.pipeline_id!r}, version={self.version!r})"


def _as_published(workspace: Any, pipeline: Any, name: str) -> PublishedPipeline:
    from mlpipe_provider.sdk.pipeline import Pipeline

    if isinstance(pipeline, PublishedPipeline):
        return pipeline
    if isinstance(pipeline, Pipeline):  # v1 publishes a Pipeline given to an endpoint
        return pipeline.publish(name=name)
    raise UserErrorException(
        f"PipelineEndpoint: expected a PublishedPipeline or Pipeline, got {type(pipeline).__name__}"
    )


class PipelineEndpoint:
    """Versions of a pipeline under one name; ``submit`` runs the default version's DAG.

    No router DAG is needed: the endpoint's name resolves, at submit time, to its default
    version's published pipeline, and that pipeline's own DAG is triggered.
    """

    def __init__(self, workspace: Any, record: dict[str, Any]):
        self._workspace = workspace
        self._record = record

    @property
    def _path(self) -> Path:
        return ENDPOINTS.path(self._workspace._dir, self._record["id"])

    def _save(self) -> None:
        ENDPOINTS.save(self._workspace._dir, self._record)

    def _reload(self) -> None:
        self._record = ENDPOINTS.find(self._workspace._dir, self.id) or self._record

    def _change(self, change: Any) -> None:
        """Change the stored record under its lock (``change`` edits the newest record), so two
        processes changing one endpoint at once both land."""
        self._record = ENDPOINTS.update(
            self._workspace._dir,
            self.id,
            change,
            f"PipelineEndpoint {self.name!r} is no longer in workspace {self._workspace.name!r}",
        )

    @staticmethod
    def _records(workspace: Any) -> list[dict[str, Any]]:
        return ENDPOINTS.list(workspace._dir)

    # --- creation and lookup ----------------------------------------------------------------------
    @staticmethod
    def publish(
        workspace: Any,
        name: str,
        description: str | None,
        pipeline: Any,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
        **kwargs: Any,
    ) -> PipelineEndpoint:
        _check_name(name, "PipelineEndpoint")
        if any(r["name"] == name for r in PipelineEndpoint._records(workspace)):
            raise UserErrorException(
                f"a PipelineEndpoint named {name!r} already exists; add versions with add()"
            )
        published = _as_published(workspace, pipeline, name)
        record = {
            "id": str(uuid.uuid4()),
            "name": name,
            "description": description,
            "status": ACTIVE,
            "default_version": "0",
            "versions": [{"version": "0", "pipeline_id": published.id}],
            "created": time.time(),
        }
        endpoint = PipelineEndpoint(workspace, record)
        endpoint._save()
        return endpoint

    @staticmethod
    def get(
        workspace: Any,
        id: str | None = None,
        name: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> PipelineEndpoint:
        if (id is None) == (name is None):
            raise UserErrorException("PipelineEndpoint.get: give exactly one of id or name")
        for record in PipelineEndpoint._records(workspace):
            if (id is not None and record["id"] == id) or (
                name is not None and record["name"] == name
            ):
                return PipelineEndpoint(workspace, record)
        raise UserErrorException(
            f"no PipelineEndpoint with {'id' if id else 'name'} {id or name!r} in workspace "
            f"{workspace.name!r}"
        )

    @staticmethod
    def list(
        workspace: Any,
        active_only: bool = True,
        max_results: int = 100,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> list[PipelineEndpoint]:
        records = sorted(
            PipelineEndpoint._records(workspace), key=lambda r: (-r.get("created", 0), r["id"])
        )
        found = [
            PipelineEndpoint(workspace, r)
            for r in records
            if not active_only or r.get("status") == ACTIVE
        ]
        return found[:max_results]

    @staticmethod
    def get_all(
        workspace: Any,
        active_only: bool = True,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> list[PipelineEndpoint]:
        """Deprecated in v1 in favour of ``list``."""
        return PipelineEndpoint.list(workspace, active_only=active_only)

    # --- v1 attributes --------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._record["id"]

    @property
    def name(self) -> str:
        return self._record["name"]

    @property
    def description(self) -> str | None:
        return self._record.get("description")

    @property
    def status(self) -> str:
        return self._record["status"]

    @property
    def default_version(self) -> str:
        return self._record["default_version"]

    @property
    def pipeline_version_list(self) -> list[PipelineIdVersion]:
        return self.list_versions()

    @property
    def endpoint(self) -> str:
        """The v1 REST address that submits the default version (``"PipelineVersion"`` in the
        body picks another); without a server, the default version's ``embedded:`` address."""
        route = ENDPOINT_ID_PATH.format(endpoint_id=self.id)
        return endpoint_url(self._workspace, route, self.get_pipeline()._dag_file)

    @property
    def swaggerurl(self) -> str | None:
        server = self._workspace._config.airflow
        return f"{server.url.rstrip('/')}{URL_PREFIX}/docs" if server else None

    # --- versions ---------------------------------------------------------------------------------
    def list_versions(self) -> list[PipelineIdVersion]:
        self._reload()
        return [
            PipelineIdVersion(v["pipeline_id"], v["version"], self._workspace)
            for v in self._record["versions"]
        ]

    def get_all_versions(
        self, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> list[PipelineIdVersion]:
        """Deprecated in v1 in favour of ``list_versions``."""
        return self.list_versions()

    def get_default_version(self) -> str:
        self._reload()
        return self.default_version

    def _version_of(self, pipeline_id: str) -> str | None:
        for entry in self._record["versions"]:
            if entry["pipeline_id"] == pipeline_id:
                return entry["version"]
        return None

    def add(self, pipeline: Any) -> None:
        """Add a version (the next number); the default stays as it is."""
        self._add(pipeline)

    def _add(self, pipeline: Any) -> str:
        published = _as_published(self._workspace, pipeline, self.name)
        added: list[str] = []

        def add_version(record: dict[str, Any]) -> None:
            self._record = record
            version = self._version_of(published.id)
            if version is None:
                version = str(max(int(v["version"]) for v in record["versions"]) + 1)
                record["versions"].append({"version": version, "pipeline_id": published.id})
            added.append(version)

        self._change(add_version)
        return added[0]

    def add_default(self, pipeline: Any) -> None:
        """Add a version and make it the default."""
        self.set_default_version(self._add(pipeline))

    def set_default(self, pipeline: Any) -> None:
        """Make an existing version, given by its published pipeline, the default."""
        if not isinstance(pipeline, PublishedPipeline):
            raise UserErrorException(
                f"set_default expects a PublishedPipeline, got {type(pipeline).__name__}"
            )
        self._reload()
        version = self._version_of(pipeline.id)
        if version is None:
            raise UserErrorException(
                f"published pipeline {pipeline.id} is not a version of PipelineEndpoint "
                f"{self.name!r}; add() it first"
            )
        self.set_default_version(version)

    def set_default_version(self, version: str | int) -> None:
        version = str(version)

        def set_default(record: dict[str, Any]) -> None:
            if not any(v["version"] == version for v in record["versions"]):
                known = ", ".join(v["version"] for v in record["versions"])
                raise UserErrorException(
                    f"PipelineEndpoint {record['name']!r} has no version {version!r} "
                    f"(versions: {known})"
                )
            record["default_version"] = version

        self._change(set_default)

    def get_pipeline(self, version: str | int | None = None) -> PublishedPipeline:
        self._reload()
        version = self.default_version if version is None else str(version)
        for entry in self._record["versions"]:
            if entry["version"] == version:
                return PublishedPipeline.get(self._workspace, entry["pipeline_id"])
        raise UserErrorException(f"PipelineEndpoint {self.name!r} has no version {version!r}")

    def list_pipelines(self, active_only: bool = True) -> list[PublishedPipeline]:
        pipelines = [self.get_pipeline(v.version) for v in self.list_versions()]
        return [p for p in pipelines if not active_only or p.status == ACTIVE]

    def get_all_pipelines(
        self,
        active_only: bool = True,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> list[PublishedPipeline]:
        """Deprecated in v1 in favour of ``list_pipelines``."""
        return self.list_pipelines(active_only=active_only)

    # --- status ---------------------------------------------------------------------------------
    def _set_status(self, status: str) -> None:
        self._change(lambda record: {**record, "status": status})

    def enable(self) -> None:
        self._set_status(ACTIVE)

    def disable(self) -> None:
        self._set_status(DISABLED)

    def archive(self) -> None:
        self._set_status(DISABLED)

    def reactivate(self, name: str | None = None) -> None:
        if name is not None:
            self.set_name(name)
        self._set_status(ACTIVE)

    def set_name(self, name: str) -> None:
        _check_name(name, "PipelineEndpoint")
        if any(
            r["name"] == name and r["id"] != self.id
            for r in PipelineEndpoint._records(self._workspace)
        ):
            raise UserErrorException(f"a PipelineEndpoint named {name!r} already exists")
        self._change(lambda record: {**record, "name": name})

    # --- running ----------------------------------------------------------------------------------
    def submit(
        self,
        experiment_name: str,
        pipeline_parameters: dict | None = None,
        parent_run_id: str | None = None,
        pipeline_version: str | None = None,
    ) -> Any:
        from mlpipe_provider.sdk.experiment import Experiment

        return self._submit_to(
            Experiment(self._workspace, experiment_name),
            pipeline_parameters=pipeline_parameters,
            pipeline_version=pipeline_version,
        )

    def _submit_to(
        self,
        experiment: Any,
        tags: dict | None = None,
        pipeline_parameters: dict | None = None,
        pipeline_version: str | None = None,
        **kwargs: Any,
    ) -> Any:
        self._reload()
        if self.status != ACTIVE:
            raise UserErrorException(
                f"PipelineEndpoint {self.name!r} is {self.status}; enable() it to submit"
            )
        published = self.get_pipeline(pipeline_version)
        return published._submit_to(
            experiment,
            tags=tags,
            pipeline_parameters=pipeline_parameters,
            _tags={"azureml.pipelineendpointid": self.id},
            **kwargs,
        )

    def __repr__(self) -> str:
        return (
            f"PipelineEndpoint(Name: {self.name}, Id: {self.id}, Status: {self.status}, "
            f"Default version: {self.default_version})"
        )
