"""``OutputFileDatasetConfig``: a step output that later steps consume as a dataset.

As in v1 the step that has the config in its ``arguments`` (or ``outputs``) produces it; later
steps consume it with ``.as_input()`` (or ``.read_delimited_files().as_input()`` for rows). The
compiler lowers it like a ``PipelineData``: the producer writes into a fresh attempt folder
(``azureml/<step run id>/<name>``) and consumers read the folder that run produced.

``destination=(datastore, "path/{run-id}/{output-name}")`` in v1 is where the output is uploaded;
in mlpipe the attempt folder stays the output (never overwritten, what reuse records) and the
finished output is copied to the destination afterwards, like a ``DataTransferStep`` does for a
``DataReference`` destination. ``register_on_complete`` registers the attempt folder as a dataset
version when the step succeeds. See docs/datasets.md.
"""

from __future__ import annotations

import copy
from typing import Any

from mlpipe_provider.errors import UserErrorException

DESTINATION_PLACEHOLDERS = ("{run-id}", "{output-name}")


class _Identity:
    """Shared by an output config and every copy made from it (``as_upload``, ``as_input``,
    ``read_delimited_files``...): they are all the same output of one producing step."""

    def __init__(self) -> None:
        self.producers: list[Any] = []


class OutputDatasetConfig:
    """What file and tabular output configs share."""

    _dataset_type = "file"

    def __init__(
        self,
        name: str | None = None,
        destination: Any = None,
        source: str | None = None,
        partition_format: str | None = None,
    ):
        from mlpipe_provider.sdk.data import _DATA_NAME_RE

        if name is not None and (not isinstance(name, str) or not _DATA_NAME_RE.match(name)):
            raise UserErrorException(
                f"{type(self).__name__} name {name!r} must start with a letter or '_' and "
                "contain only letters, digits and '_'"
            )
        if partition_format is not None:
            from mlpipe_provider.errors import NotSupportedError

            raise NotSupportedError(
                f"{type(self).__name__}: partition_format is not supported by mlpipe"
            )
        if source is not None and not isinstance(source, str):
            raise UserErrorException(f"{type(self).__name__} {name!r}: source must be a path")
        self._name = name
        self._destination = _parse_destination(destination, name)
        self.source = source
        self.partition_format = partition_format
        self.mode = "mount"
        self._overwrite = False
        self._source_globs: list[str] | None = None
        self._registration: dict[str, Any] | None = None
        self._identity = _Identity()

    # --- v1 attributes ------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        return self._name

    @property
    def destination(self) -> tuple[Any, str] | None:
        if self._destination is None:
            return None
        return self._destination["datastore_object"], self._destination["path"]

    # --- what the compiler reads (read-only; not v1 API) --------------------------------------
    @property
    def identity(self) -> object:
        """The same object for this output and every copy of it (``as_upload``, ``as_input``, ...)."""
        return self._identity

    @property
    def destination_spec(self) -> dict[str, Any] | None:
        """Where the output is copied on success: ``{"datastore": NAME, "path": PATH, ...}``."""
        return dict(self._destination) if self._destination is not None else None

    @property
    def source_globs(self) -> list[str] | None:
        """``as_upload(source_globs=...)``: the files kept in the output."""
        return list(self._source_globs) if self._source_globs is not None else None

    @property
    def overwrite(self) -> bool:
        """``as_upload(overwrite=...)``: the destination copy may replace different files."""
        return self._overwrite

    @property
    def registration(self) -> dict[str, Any] | None:
        """``register_on_complete``'s name, description and tags; None when not registered."""
        return dict(self._registration) if self._registration is not None else None

    @property
    def dataset_type(self) -> str:
        """``file`` or ``tabular``: how a later step reads it."""
        return self._dataset_type

    def tabular_settings(self) -> dict[str, Any] | None:
        """How a tabular output is parsed (separator, header, ...); None for a file output."""
        return self._tabular_settings()

    def _copy(self, cls: type | None = None, **changes: Any) -> Any:
        clone = copy.copy(self)
        if cls is not None:
            clone.__class__ = cls
        for key, value in changes.items():
            setattr(clone, key, value)
        return clone

    # --- how the producer writes it ---------------------------------------------------------------
    def as_mount(self, disable_metadata_cache: bool = False) -> Any:
        return self._copy(mode="mount")

    def as_upload(self, overwrite: bool = False, source_globs: Any = None) -> Any:
        """Upload mode; ``overwrite`` lets the destination copy replace different files there;
        ``source_globs`` keeps only the files they match in the output."""
        globs = None
        if source_globs is not None:
            from mlpipe_provider.datastores import safe_relative_path

            items = [source_globs] if isinstance(source_globs, str) else list(source_globs)
            if not items or not all(isinstance(g, str) and g.strip("/") for g in items):
                raise UserErrorException(
                    f"output {self.name!r}: source_globs must be a glob or a list of globs"
                )
            globs = [safe_relative_path(g, what="source_globs") for g in items]
        return self._copy(mode="upload", _overwrite=bool(overwrite), _source_globs=globs)

    def register_on_complete(
        self, name: str, description: str | None = None, tags: dict | None = None
    ) -> Any:
        """Register the output as a dataset (a new version each time it changes) on success."""
        from mlpipe_provider.dataset_registry import check_name

        registration = {
            "name": check_name(name),
            "description": description,
            "tags": {str(k): str(v) for k, v in (tags or {}).items()},
        }
        return self._copy(_registration=registration)

    # --- how later steps read it ------------------------------------------------------------------
    def as_input(self, name: str | None = None) -> Any:
        from mlpipe_provider.sdk.dataset import DatasetConsumptionConfig

        mode = "direct" if self._dataset_type == "tabular" else "mount"
        return DatasetConsumptionConfig(name, self, mode)

    def _tabular_settings(self) -> dict[str, Any] | None:
        return None

    def __str__(self) -> str:
        from mlpipe_provider.sdk.data import DATAREFERENCE_TOKEN

        if self._name is None:
            raise UserErrorException(
                f"an unnamed {type(self).__name__} cannot be used inside a string argument: give "
                "it a name, or pass it as an argument of its own"
            )
        return f"{DATAREFERENCE_TOKEN}{self._name}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, mode={self.mode!r})"


class OutputFileDatasetConfig(OutputDatasetConfig):
    """v1's ``azureml.data.OutputFileDatasetConfig``."""

    def read_delimited_files(
        self,
        include_path: bool = False,
        separator: str = ",",
        header: Any = True,
        partition_format: str | None = None,
        path_glob: str | None = None,
        set_column_types: Any = None,
    ) -> OutputTabularDatasetConfig:
        from mlpipe_provider.sdk.dataset import delimited_settings

        if partition_format is not None:
            from mlpipe_provider.errors import NotSupportedError

            raise NotSupportedError("read_delimited_files: partition_format is not supported")
        settings = delimited_settings(
            separator=separator,
            header=header,
            include_path=include_path,
            set_column_types=set_column_types,
            path_glob=path_glob,
        )
        return self._copy(OutputTabularDatasetConfig, _read=settings)

    def read_parquet_files(
        self,
        include_path: bool = False,
        partition_format: str | None = None,
        path_glob: str | None = None,
        set_column_types: Any = None,
    ) -> OutputTabularDatasetConfig:
        from mlpipe_provider.sdk.dataset import parquet_settings

        if partition_format is not None:
            from mlpipe_provider.errors import NotSupportedError

            raise NotSupportedError("read_parquet_files: partition_format is not supported")
        settings = parquet_settings(
            include_path=include_path, set_column_types=set_column_types, path_glob=path_glob
        )
        return self._copy(OutputTabularDatasetConfig, _read=settings)


class OutputTabularDatasetConfig(OutputDatasetConfig):
    """v1's ``azureml.data.output_dataset_config.OutputTabularDatasetConfig``: the same output,
    read as rows by consumers (``input_datasets[name].to_pandas_dataframe()``)."""

    _dataset_type = "tabular"
    _read: dict[str, Any]

    def _tabular_settings(self) -> dict[str, Any] | None:
        return self._read

    def keep_columns(self, *args: Any, **kwargs: Any) -> Any:
        from mlpipe_provider.errors import NotSupportedError

        raise NotSupportedError("OutputTabularDatasetConfig.keep_columns is not supported")

    drop_columns = keep_columns


def _parse_destination(destination: Any, name: str | None) -> dict[str, Any] | None:
    if destination is None:
        return None
    from mlpipe_provider.sdk.data import _datastore_name
    from mlpipe_provider.sdk.datapath import DataPath

    if isinstance(destination, DataPath):
        store, path = destination._datastore, destination.path_on_datastore
    elif isinstance(destination, tuple) and len(destination) == 2:
        store, path = destination
    else:
        raise UserErrorException(
            f"OutputFileDatasetConfig {name!r}: destination must be (datastore, 'path') or a "
            f"DataPath, got {type(destination).__name__}"
        )
    if not isinstance(path, str) or not path.strip("/"):
        raise UserErrorException(
            f"OutputFileDatasetConfig {name!r}: the destination path must be a non-empty string, "
            f"got {path!r}"
        )
    return {"datastore": _datastore_name(store), "datastore_object": store, "path": path}


# --- what the pipeline closure and the compiler ask -------------------------------------------


def note_producer(step: Any, items: list[Any]) -> None:
    """A step constructed with output configs in ``outputs``/``arguments`` produces them."""
    for item in items:
        if isinstance(item, OutputDatasetConfig) and not any(
            s is step for s in item._identity.producers
        ):
            item._identity.producers.append(step)


def producers_of(item: Any) -> list[Any]:
    """Steps that produce the output config an input or argument consumes (for the closure)."""
    from mlpipe_provider.sdk.dataset import DatasetConsumptionConfig

    if isinstance(item, DatasetConsumptionConfig):
        item = item.dataset
    if isinstance(item, OutputDatasetConfig):
        return list(item._identity.producers)
    return []
