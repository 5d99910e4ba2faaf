"""The workspace configuration file: datastores, compute targets and the Airflow server.

The SDK writes it and the operators read it at run time, so it lives outside ``sdk`` and imports
nothing heavy. One JSON file, ``.mlpipe/config.json``; relative paths in it are relative to the
folder holding it, so a workspace can be moved or mounted elsewhere (docker-compose, Kubernetes).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CONFIG_DIR_NAME = ".mlpipe"
CONFIG_FILE_NAME = "config.json"
DEFAULT_DATASTORE = "workspaceblobstore"
WORKSPACE_ENV = "MLPIPE_WORKSPACE"
# The workspace a running step belongs to, for ``Run.get_context().experiment.workspace``
# (a path on the worker; a step in a container does not see it).
STEP_WORKSPACE_ENV = "MLPIPE_STEP_WORKSPACE"


class DatastoreConfig(BaseModel):
    """Where a datastore keeps its bytes; ``url`` is an fsspec URL or a path."""

    model_config = ConfigDict(extra="allow")

    url: str
    datastore_type: str = "AzureBlob"
    container_name: str | None = None
    account_name: str | None = None


class ComputeTargetConfig(BaseModel):
    """A named compute target; GPU targets become Airflow pools and queues of the same name."""

    model_config = ConfigDict(extra="allow")

    vm_size: str = "STANDARD_D2_V2"
    backend: Literal["local", "docker", "kubernetes"] = "local"
    min_nodes: int = 0
    max_nodes: int = 1
    vm_priority: str = "dedicated"
    compute_type: str = "AmlCompute"
    description: str | None = None


class AirflowServerConfig(BaseModel):
    """A real Airflow API server. The password is never stored here: ``password_env`` names an
    environment variable, ``password_file`` a file (relative to this folder) holding it."""

    url: str
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    #: v1 ServicePrincipalAuthentication: service principal id -> the Airflow user it logs in as
    #: (its password is the one the program passes; none is stored here)
    service_principals: dict[str, str] | None = None


class WorkspaceConfig(BaseModel):
    """The whole file. v1's identity fields are kept so ``ws.name`` etc. behave as before."""

    model_config = ConfigDict(extra="allow")

    workspace_name: str = "local"
    subscription_id: str = ""
    resource_group: str = ""
    location: str = "local"
    default_datastore: str = DEFAULT_DATASTORE
    datastores: dict[str, DatastoreConfig] = Field(default_factory=dict)
    compute_targets: dict[str, ComputeTargetConfig] = Field(default_factory=dict)
    airflow: AirflowServerConfig | None = None
    #: MLflow server for pipeline and step runs (docs/tracking.md); $MLFLOW_TRACKING_URI wins
    mlflow_tracking_uri: str | None = None


def embedded_config() -> WorkspaceConfig:
    """The workspace a newcomer gets: one local-folder datastore, no servers."""
    return WorkspaceConfig(
        datastores={DEFAULT_DATASTORE: DatastoreConfig(url=f"datastores/{DEFAULT_DATASTORE}")}
    )


def load_config(workspace_dir: Path) -> WorkspaceConfig:
    path = Path(workspace_dir) / CONFIG_FILE_NAME
    return WorkspaceConfig.model_validate_json(path.read_text(encoding="utf-8"))


def save_config(workspace_dir: Path, config: WorkspaceConfig) -> None:
    """Write atomically so a concurrent reader never sees half a file."""
    workspace_dir = Path(workspace_dir)
    workspace_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config.model_dump(mode="json", exclude_none=True), indent=2, sort_keys=True)
    atomic_write_text(workspace_dir / CONFIG_FILE_NAME, text + "\n")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; DAG files must be readable by Airflow
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_workspace_dir(recorded: str | None, relative_to: Path | None) -> Path:
    """The workspace a DAG runs against: ``$MLPIPE_WORKSPACE`` wins over the compiled-in path.

    A DAG file records its workspace relative to itself, so a committed ``dags/`` folder works
    from any checkout; deployments that mount the workspace elsewhere set the variable.
    """
    override = os.environ.get(WORKSPACE_ENV)
    if override:
        return Path(override).resolve()
    if recorded is None:
        raise FileNotFoundError("no workspace recorded in the DAG and $MLPIPE_WORKSPACE is not set")
    path = Path(recorded)
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    return path.resolve()
