"""``DataPath`` and ``DataPathComputeBinding``: a datastore path chosen when a run starts.

As in v1, a DataPath is the default of a ``PipelineParameter``, and a step takes it as the tuple
``(datapath_param, DataPathComputeBinding(mode='mount'))`` in ``inputs`` and ``arguments``::

    datapath = DataPath(datastore=ds, path_on_datastore="raw/2024-01")
    param = PipelineParameter(name="input_data", default_value=datapath)
    step_input = (param, DataPathComputeBinding(mode="mount"))
    PythonScriptStep("train.py", arguments=["--data", step_input], inputs=[step_input], ...)

Each run may pass another path (``pipeline_parameters={"input_data": DataPath(ds, "raw/2024-02")}``,
a string, or ``{"datastore": ..., "path_on_datastore": ...}`` through Airflow); the step sees a
local path, and reuse hashes the content at that path like a ``DataReference``.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk.data import VALID_MODES, DataReference, _datastore_name


class DataPath:
    """A path on a datastore; the value type of a DataPath pipeline parameter."""

    def __init__(
        self,
        datastore: Any = None,
        path_on_datastore: str | None = None,
        name: str | None = None,
    ):
        if path_on_datastore is not None and not isinstance(path_on_datastore, str):
            raise UserErrorException(
                f"DataPath: path_on_datastore must be a string, got {type(path_on_datastore).__name__}"
            )
        self._datastore = datastore
        self._datastore_name = _datastore_name(datastore)
        self._path_on_datastore = path_on_datastore
        self._name = name

    @property
    def datastore_name(self) -> str | None:
        return self._datastore_name

    @property
    def path_on_datastore(self) -> str | None:
        return self._path_on_datastore

    @property
    def name(self) -> str | None:
        return self._name

    def create_data_reference(
        self, data_reference_name: str | None = None, datapath_compute_binding: Any = None
    ) -> DataReference:
        """A ``DataReference`` to the same path (v1 offers this to reuse old step code)."""
        binding = datapath_compute_binding or DataPathComputeBinding()
        return DataReference(
            self._datastore,
            data_reference_name or self._name,
            self._path_on_datastore,
            mode=binding._mode,
            path_on_compute=binding._path_on_compute,
            overwrite=binding._overwrite,
        )

    @staticmethod
    def create_from_data_reference(data_reference: DataReference) -> DataPath:
        return DataPath(
            data_reference.datastore,
            data_reference.path_on_datastore,
            data_reference.data_reference_name,
        )

    def to_value(self, default_datastore: str) -> dict[str, str]:
        """The path as a parameter value (a plain dict), on ``default_datastore`` unless it names one."""
        return {
            "datastore": self._datastore_name or default_datastore,
            "path_on_datastore": self._path_on_datastore or "",
        }

    def __repr__(self) -> str:
        return (
            f"DataPath(datastore={self._datastore_name!r}, "
            f"path_on_datastore={self._path_on_datastore!r})"
        )


class DataPathComputeBinding:
    """How a step sees a DataPath: mounted (the default) or downloaded, and where."""

    def __init__(
        self, mode: str = "mount", path_on_compute: str | None = None, overwrite: bool = False
    ):
        if mode not in VALID_MODES:
            raise UserErrorException(
                f"DataPathComputeBinding: mode must be one of {', '.join(VALID_MODES)}, got {mode!r}"
            )
        self._mode = mode
        self._path_on_compute = path_on_compute
        self._overwrite = overwrite

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def path_on_compute(self) -> str | None:
        return self._path_on_compute

    @property
    def overwrite(self) -> bool:
        return self._overwrite

    def __repr__(self) -> str:
        return f"DataPathComputeBinding(mode={self._mode!r}, path_on_compute={self._path_on_compute!r})"
