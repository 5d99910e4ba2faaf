"""``Workspace``: where datastores, compute targets, DAGs and run records of a project live.

v1 connected to a workspace in Azure; here a workspace is a folder (``.mlpipe/``) holding
``config.json``. ``Workspace.from_config()`` walks up from the current directory like v1 did, and
with nothing found uses an embedded local workspace so a newcomer needs no setup at all.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mlpipe_provider.config import (
    CONFIG_DIR_NAME,
    CONFIG_FILE_NAME,
    WorkspaceConfig,
    embedded_config,
    load_config,
    save_config,
)
from mlpipe_provider.errors import UserErrorException

_announced_embedded: set[Path] = set()


def _find_config(start: Path) -> tuple[Path, dict[str, Any] | None] | None:
    """Return (workspace dir, v1 identity or None) for the nearest config walking up."""
    for folder in [start, *start.parents]:
        if folder.name == CONFIG_DIR_NAME and (folder / CONFIG_FILE_NAME).is_file():
            return folder, None  # from_config(path=".mlpipe"): the workspace folder itself
        ours = folder / CONFIG_DIR_NAME / CONFIG_FILE_NAME
        if ours.is_file():
            return ours.parent, None
        for candidate in (folder / "config.json", folder / ".azureml" / "config.json"):
            if candidate.is_file():
                try:
                    data = json.loads(candidate.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                if isinstance(data, dict) and "workspace_name" in data:
                    return folder / CONFIG_DIR_NAME, data
    return None


class Workspace:
    """A workspace; construct it with ``from_config()`` or ``get()`` as in v1."""

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        auth: Any = None,
        _location: str | None = None,
        _disable_service_check: bool = False,
        _workspace_id: str | None = None,
        sku: str = "basic",
        tags: dict | None = None,
        _cloud: str = "AzureCloud",
        *,
        _workspace_dir: str | Path | None = None,
    ):
        if _workspace_dir is None:
            found = _find_config(Path.cwd())
            _workspace_dir = found[0] if found else Path.cwd() / CONFIG_DIR_NAME
        self._dir = Path(_workspace_dir).resolve()
        self._config_cache: tuple[float, WorkspaceConfig] | None = None
        if not (self._dir / CONFIG_FILE_NAME).is_file():
            config = embedded_config()
            for key, value in (
                ("subscription_id", subscription_id),
                ("resource_group", resource_group),
                ("workspace_name", workspace_name),
                ("location", _location),
            ):
                if value:
                    setattr(config, key, value)
            save_config(self._dir, config)
        self.tags = dict(tags or {})
        self.sku = sku
        self._auth = auth
        if auth is not None and hasattr(auth, "_bind"):
            auth._bind(self)  # its tokens come from this workspace's Airflow server

    # --- construction, as in v1 -------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        path: str | None = None,
        auth: Any = None,
        _logger: Any = None,
        _file_name: str | None = None,
    ) -> Workspace:
        """Find the nearest workspace config walking up from ``path`` (default: the cwd)."""
        start = Path(path).resolve() if path else Path.cwd()
        if start.is_file():
            start = start.parent
        found = _find_config(start)
        if found is None:
            ws_dir = Path.cwd() / CONFIG_DIR_NAME
            if ws_dir.resolve() not in _announced_embedded:
                _announced_embedded.add(ws_dir.resolve())
                print(
                    f"mlpipe: no workspace config found from {start}; using the embedded local "
                    f"workspace at {ws_dir} (datastore 'workspaceblobstore' is a local folder)",
                    file=sys.stderr,
                )
            return cls(auth=auth, _workspace_dir=ws_dir)
        ws_dir, identity = found
        if identity is not None:
            return cls(
                subscription_id=identity.get("subscription_id"),
                resource_group=identity.get("resource_group"),
                workspace_name=identity.get("workspace_name"),
                auth=auth,
                _workspace_dir=ws_dir,
            )
        return cls(auth=auth, _workspace_dir=ws_dir)

    @classmethod
    def get(
        cls,
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        cloud: str = "AzureCloud",
        id: str | None = None,
    ) -> Workspace:
        """v1 looked the workspace up in Azure; here it is the nearest config, renamed if new."""
        ws = cls.from_config(auth=auth)
        if ws.name != name and ws.name == "local":
            config = ws._config
            config.workspace_name = name
            config.subscription_id = subscription_id or config.subscription_id
            config.resource_group = resource_group or config.resource_group
            ws._save(config)
        return ws

    @classmethod
    def create(
        cls,
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        create_resource_group: bool = True,
        sku: str = "basic",
        tags: dict | None = None,
        exist_ok: bool = False,
        show_output: bool = True,
        **kwargs: Any,
    ) -> Workspace:
        """Create a workspace folder (``.mlpipe/``) in the current directory."""
        ws_dir = Path.cwd() / CONFIG_DIR_NAME
        if (ws_dir / CONFIG_FILE_NAME).is_file() and not exist_ok:
            raise UserErrorException(f"a workspace already exists at {ws_dir} (pass exist_ok=True)")
        return cls(
            subscription_id,
            resource_group,
            name,
            auth,
            _location=location,
            tags=tags,
            sku=sku,
            _workspace_dir=ws_dir,
        )

    # --- config ---------------------------------------------------------------------------
    @property
    def _config(self) -> WorkspaceConfig:
        path = self._dir / CONFIG_FILE_NAME
        mtime = path.stat().st_mtime_ns
        if self._config_cache is None or self._config_cache[0] != mtime:
            self._config_cache = (mtime, load_config(self._dir))
        return self._config_cache[1].model_copy(deep=True)

    @property
    def directory(self) -> Path:
        """The workspace folder (holds ``config.json``, the registries and the output store)."""
        return self._dir

    @property
    def settings(self) -> WorkspaceConfig:
        """A copy of the workspace configuration (datastores, compute targets, Airflow server)."""
        return self._config

    def _save(self, config: WorkspaceConfig) -> None:
        save_config(self._dir, config)
        self._config_cache = None

    def write_config(self, path: str | None = None, file_name: str | None = None) -> None:
        """Write v1's identity file (``config.json``) so other folders find this workspace."""
        folder = Path(path) if path else Path.cwd() / ".azureml"
        folder.mkdir(parents=True, exist_ok=True)
        identity = {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.name,
        }
        (folder / (file_name or "config.json")).write_text(json.dumps(identity, indent=2) + "\n")

    # --- v1 attributes ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._config.workspace_name

    @property
    def subscription_id(self) -> str:
        return self._config.subscription_id

    @property
    def resource_group(self) -> str:
        return self._config.resource_group

    @property
    def location(self) -> str:
        return self._config.location

    @property
    def datastores(self) -> dict[str, Any]:
        from mlpipe_provider.sdk.datastore import Datastore

        return {name: Datastore(self, name) for name in sorted(self._config.datastores)}

    @property
    def datasets(self) -> dict[str, Any]:
        """Registered datasets by name (their latest versions), as v1's ``ws.datasets``."""
        from mlpipe_provider.sdk.dataset import AbstractDataset

        return AbstractDataset.get_all(self)

    @property
    def environments(self) -> dict[str, Any]:
        """Registered and curated environments by name, as v1's ``ws.environments``."""
        from mlpipe_provider.sdk.environment import Environment

        return Environment.list(self)

    @property
    def compute_targets(self) -> dict[str, Any]:
        from mlpipe_provider.sdk.compute import ComputeTargets

        return ComputeTargets(self)

    @property
    def experiments(self) -> dict[str, Any]:
        from mlpipe_provider.sdk.experiment import Experiment

        return {name: Experiment(self, name) for name in Experiment._recorded_names(self)}

    def get_run(self, run_id: str) -> Any:
        """The pipeline run with this id, whichever experiment it belongs to (v1's ``get_run``)."""
        from mlpipe_provider.embedded.status import REQUEST_FILE, read_json
        from mlpipe_provider.errors import UserErrorException
        from mlpipe_provider.sdk.experiment import Experiment, PipelineRun

        request = None
        if (
            isinstance(run_id, str)
            and run_id.strip(".")
            and "/" not in run_id
            and "\\" not in run_id
        ):
            request = read_json(self.runs_dir / run_id / REQUEST_FILE)
        if request is None:
            raise UserErrorException(f"no run {run_id!r} in workspace {self.name!r}")
        experiment = Experiment(self, request["experiment"], _skip_name_validation=True)
        return PipelineRun(experiment, str(run_id))

    def get_default_compute_target(self, type: str) -> Any:
        """v1's workspace default CPU or GPU target: None, as for a v1 workspace created without
        one (``default_cpu_compute_target``); notebooks then create or look up a cluster by name
        (``ws.compute_targets``), which works here."""
        if not isinstance(type, str) or type.upper() not in ("CPU", "GPU"):
            raise UserErrorException(
                f"get_default_compute_target: type must be 'CPU' or 'GPU', got {type!r}"
            )
        return None

    def get_default_datastore(self) -> Any:
        from mlpipe_provider.sdk.datastore import Datastore

        return Datastore(self, self._config.default_datastore)

    def set_default_datastore(self, name: str) -> None:
        config = self._config
        if name not in config.datastores:
            raise UserErrorException(f"unknown datastore {name!r}")
        from mlpipe_provider.sql_datastores import is_sql_datastore, not_a_file_store

        if is_sql_datastore(config.datastores[name]):  # the output store needs files
            raise not_a_file_store(name, config.datastores[name])
        config.default_datastore = name
        self._save(config)

    def get_details(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "location": self.location,
            "workspaceDir": str(self._dir),
        }

    def get_mlflow_tracking_uri(self, _with_auth: bool = False) -> str:
        """The MLflow server pipeline runs are tracked in, for ``mlflow.set_tracking_uri(...)``.

        Same rule as the workers (docs/tracking.md): ``$MLFLOW_TRACKING_URI``, else the
        workspace config's ``mlflow_tracking_uri``. v1 always had one; here it must be configured.
        """
        from mlpipe_provider.tracking import configured_tracking_uri

        uri = configured_tracking_uri(self._config)
        if uri is None:
            raise UserErrorException(
                "no MLflow tracking URI: set $MLFLOW_TRACKING_URI or 'mlflow_tracking_uri' in "
                f"{self._dir / CONFIG_FILE_NAME}"
            )
        return uri

    # --- mlpipe folders ----------------------------------------------------------------------
    @property
    def dags_dir(self) -> Path:
        return self._dir / "dags"

    @property
    def runs_dir(self) -> Path:
        return self._dir / "runs"

    @property
    def airflow_home(self) -> Path:
        return self._dir / "airflow"

    def __repr__(self) -> str:
        return f"Workspace.create(name='{self.name}', dir='{self._dir}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other._dir == self._dir

    def __hash__(self) -> int:
        return hash(self._dir)
