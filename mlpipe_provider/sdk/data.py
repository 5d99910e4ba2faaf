"""Data that flows between steps: ``DataReference``, ``PipelineData``, ``PipelineParameter``.

In v1 ``str(data)`` is ``$AZUREML_DATAREFERENCE_<name>``, and that token inside an argument string
is replaced by the data's path at run time; mlpipe keeps that contract.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from mlpipe_provider.errors import UserErrorException

_DATA_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
DATAREFERENCE_TOKEN = "$AZUREML_DATAREFERENCE_"
VALID_MODES = ("mount", "download", "upload", "direct", "hdfs", "link")


def _check_mode(mode: str, what: str) -> str:
    if mode not in VALID_MODES:
        raise UserErrorException(
            f"{what}: mode must be one of {', '.join(VALID_MODES)}, got {mode!r}"
        )
    return mode


def _datastore_name(datastore: Any) -> str | None:
    if datastore is None:
        return None
    if isinstance(datastore, str):
        return datastore
    name = getattr(datastore, "name", None)
    if not isinstance(name, str):
        raise UserErrorException(
            f"datastore must be a Datastore or a name, got {type(datastore).__name__}"
        )
    return name


class DataReference:
    """A path in a datastore that a step reads (or, with ``as_upload``, writes)."""

    def __init__(
        self,
        datastore: Any,
        data_reference_name: str | None = None,
        path_on_datastore: str | None = None,
        mode: str = "mount",
        path_on_compute: str | None = None,
        overwrite: bool = False,
    ):
        self.datastore = datastore
        self.datastore_name = _datastore_name(datastore)
        if data_reference_name is None:
            data_reference_name = self.datastore_name or "data_reference"
        if not isinstance(data_reference_name, str) or not _DATA_NAME_RE.match(data_reference_name):
            raise UserErrorException(
                f"DataReference data_reference_name {data_reference_name!r} must start with a letter "
                "or '_' and contain only letters, digits and '_'"
            )
        if path_on_datastore is not None and not isinstance(path_on_datastore, str):
            raise UserErrorException(
                f"DataReference {data_reference_name!r}: path_on_datastore must be a string"
            )
        self.data_reference_name = data_reference_name
        self.path_on_datastore = path_on_datastore
        self.mode = _check_mode(mode, f"DataReference {data_reference_name!r}")
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite

    def _with(self, **changes: Any) -> DataReference:
        clone = copy.copy(self)
        for key, value in changes.items():
            setattr(clone, key, value)
        return clone

    def as_mount(self) -> DataReference:
        return self._with(mode="mount")

    def as_download(
        self, path_on_compute: str | None = None, overwrite: bool = False
    ) -> DataReference:
        return self._with(mode="download", path_on_compute=path_on_compute, overwrite=overwrite)

    def as_upload(
        self, path_on_compute: str | None = None, overwrite: bool = False
    ) -> DataReference:
        return self._with(mode="upload", path_on_compute=path_on_compute, overwrite=overwrite)

    def path(
        self, path: str | None = None, data_reference_name: str | None = None
    ) -> DataReference:
        import posixpath

        joined = posixpath.join(self.path_on_datastore or "", path or "") or None
        return DataReference(
            self.datastore,
            data_reference_name or self.data_reference_name,
            joined,
            self.mode,
            self.path_on_compute,
            self.overwrite,
        )

    @property
    def name(self) -> str:
        return self.data_reference_name

    def __str__(self) -> str:
        return f"{DATAREFERENCE_TOKEN}{self.data_reference_name}"

    def __repr__(self) -> str:
        return (
            f"$AZUREML_DATAREFERENCE_{self.data_reference_name} (datastore={self.datastore_name!r}, "
            f"path_on_datastore={self.path_on_datastore!r}, mode={self.mode!r})"
        )


class PipelineData:
    """Intermediate data: written by one step, read by the steps after it."""

    def __init__(
        self,
        name: str,
        datastore: Any = None,
        output_name: str | None = None,
        output_mode: str = "mount",
        output_path_on_compute: str | None = None,
        output_overwrite: bool | None = None,
        data_type: str | None = None,
        is_directory: bool | None = None,
        pipeline_output_name: str | None = None,
        training_output: Any = None,
    ):
        if not isinstance(name, str) or not _DATA_NAME_RE.match(name):
            raise UserErrorException(
                f"PipelineData name {name!r} must start with a letter or '_' and contain only "
                "letters, digits and '_'"
            )
        if output_name is not None and (
            not isinstance(output_name, str) or not _DATA_NAME_RE.match(output_name)
        ):
            # v1's rule too; the output name is a folder in the datastore, so no '/' or '..'
            raise UserErrorException(
                f"PipelineData {name!r}: output_name {output_name!r} must start with a letter or "
                "'_' and contain only letters, digits and '_'"
            )
        self._name = name
        self.datastore = datastore
        self.datastore_name = _datastore_name(datastore)
        self._output_name = output_name or name
        self._output_mode = _check_mode(output_mode, f"PipelineData {name!r}")
        self._output_path_on_compute = output_path_on_compute
        self._output_overwrite = output_overwrite
        self._data_type = data_type or "AnyDirectory"
        self._is_directory = is_directory
        self._pipeline_output_name = pipeline_output_name
        self._training_output = training_output
        self._producers: list[Any] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def output_mode(self) -> str:
        """How the producing step writes it (``mount`` or ``upload``)."""
        return self._output_mode

    @property
    def output_path_on_compute(self) -> str | None:
        """Where the producing step sees it, relative to its working folder (None: mlpipe picks)."""
        return self._output_path_on_compute

    @property
    def producers(self) -> tuple[Any, ...]:
        """The steps that list it among their outputs (a pipeline allows exactly one)."""
        return tuple(self._producers)

    @property
    def output_name(self) -> str:
        return self._output_name

    @property
    def data_type(self) -> str:
        return self._data_type

    @property
    def is_directory(self) -> bool | None:
        return self._is_directory

    @property
    def pipeline_output_name(self) -> str | None:
        return self._pipeline_output_name

    def as_input(self, input_name: str) -> InputPortBinding:
        return InputPortBinding(input_name, self, bind_mode="mount")

    def as_mount(self, input_name: str | None = None) -> InputPortBinding:
        return InputPortBinding(input_name or self._name, self, bind_mode="mount")

    def as_download(
        self,
        input_name: str | None = None,
        path_on_compute: str | None = None,
        overwrite: bool | None = None,
    ) -> InputPortBinding:
        return InputPortBinding(
            input_name or self._name,
            self,
            bind_mode="download",
            path_on_compute=path_on_compute,
            overwrite=overwrite,
        )

    def as_dataset(self) -> PipelineData:
        return self

    def parse_delimited_files(self, *args: Any, **kwargs: Any) -> PipelineData:
        return self

    def parse_parquet_files(self, *args: Any, **kwargs: Any) -> PipelineData:
        return self

    def __str__(self) -> str:
        return f"{DATAREFERENCE_TOKEN}{self._name}"

    def __repr__(self) -> str:
        return (
            f"$AZUREML_DATAREFERENCE_{self._name} (PipelineData, datastore={self.datastore_name!r})"
        )


class InputPortBinding:
    """Binds data to a step input under a name and a mode (``as_mount``/``as_download``)."""

    def __init__(
        self,
        name: str,
        bind_object: Any,
        bind_mode: str = "mount",
        path_on_compute: str | None = None,
        overwrite: bool | None = None,
        is_resource: bool = False,
        input_name: str | None = None,
    ):
        self.name = input_name or name
        self.bind_object = bind_object
        self.bind_mode = _check_mode(bind_mode, f"input {name!r}")
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite
        self.is_resource = is_resource

    @property
    def data_reference_name(self) -> str:
        return self.name

    def __str__(self) -> str:
        return f"{DATAREFERENCE_TOKEN}{self.name}"


class PipelineParameter:
    """A run-time parameter with a default; becomes an Airflow DAG param with a JSON schema."""

    def __init__(self, name: str, default_value: Any):
        if not isinstance(name, str) or not _PARAM_NAME_RE.match(name):
            raise UserErrorException(
                f"PipelineParameter name {name!r} must start with a letter or '_' and contain only "
                "letters, digits, '_', '.' and '-'"
            )
        self.name = name
        self.default_value = default_value

    def __str__(self) -> str:
        return f"PipelineParameter_Name:{self.name}_Default:{self.default_value}"

    def __repr__(self) -> str:
        return f"PipelineParameter(name={self.name!r}, default_value={self.default_value!r})"
