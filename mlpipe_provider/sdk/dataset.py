"""v1 datasets: ``Dataset.File.from_files``, ``Dataset.Tabular.from_delimited_files``, registration,
and how a step consumes them (``as_named_input(...).as_mount()``, ``Run.input_datasets``).

A dataset is a *definition*: datastore paths or globs (``(datastore, "raw/**")``), plus, for a
tabular dataset, how its delimited or parquet files are read. Nothing is copied when one is
created; ``register`` stores the definition in the workspace's registry
(``<workspace>/datasets/<name>/<version>.json``) and ``Dataset.get_by_name`` reads it back.

In a pipeline a dataset input is lowered to an input of kind ``"dataset"``: the step sees one
local folder holding the matched files (see ``mlpipe_provider.dataset_files``), and reuse hashes
those files' bytes like a ``DataReference``. See docs/datasets.md for what differs from v1.

Importing this module needs only the standard library (step scripts reach it through
``Run.input_datasets``); datastore access and pandas are imported when used.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from enum import Enum
from pathlib import Path
from typing import Any

from mlpipe_provider import dataset_files, dataset_registry
from mlpipe_provider.errors import NotSupportedError, UserErrorException

INPUT_DATASETS_ENV = "MLPIPE_INPUT_DATASETS"
_INPUT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IDENTIFIER_BAD = re.compile(r"[^A-Za-z0-9_]")
CONSUMPTION_MODES = ("direct", "mount", "download")


class MissingDependencyError(UserErrorException, ImportError):
    """An optional package a method needs (pandas, pyarrow) is not installed."""


def _pandas(what: str) -> Any:
    try:
        import pandas
    except ImportError:
        raise MissingDependencyError(
            f"{what} needs pandas, which is not installed in this Python environment "
            f"({sys.executable}); install it (pip install pandas), or, in a pipeline step, add it "
            "to the step's environment (CondaDependencies.add_pip_package('pandas'))"
        ) from None
    return pandas


# --- v1's small value types -------------------------------------------------------------------


class PromoteHeadersBehavior(Enum):
    """v1's ``azureml.data.dataset_type_definitions.PromoteHeadersBehavior``."""

    NO_HEADERS = 0
    ONLY_FIRST_FILE_HAS_HEADERS = 1
    COMBINE_ALL_FILES_HEADERS = 2
    ALL_FILES_HAVE_SAME_HEADERS = 3


_HEADER_MODES = {
    PromoteHeadersBehavior.NO_HEADERS: "none",
    PromoteHeadersBehavior.ONLY_FIRST_FILE_HAS_HEADERS: "first_file",
    PromoteHeadersBehavior.COMBINE_ALL_FILES_HEADERS: "all_files",
    PromoteHeadersBehavior.ALL_FILES_HAVE_SAME_HEADERS: "all_files",
}


def _header_mode(header: Any) -> str:
    if isinstance(header, bool):
        return "all_files" if header else "none"
    if isinstance(header, PromoteHeadersBehavior):
        return _HEADER_MODES[header]
    raise UserErrorException(
        f"header must be True, False or a PromoteHeadersBehavior, got {header!r}"
    )


class DataType:
    """v1's ``azureml.data.DataType``: a column type for ``set_column_types``."""

    _KINDS = ("string", "long", "double", "boolean", "datetime")

    def __init__(self, kind: str, formats: list[str] | None = None):
        if kind not in self._KINDS:
            raise UserErrorException(f"DataType must be one of {self._KINDS}, got {kind!r}")
        self.kind = kind
        self.formats = list(formats or [])

    @staticmethod
    def to_string() -> DataType:
        return DataType("string")

    @staticmethod
    def to_long() -> DataType:
        return DataType("long")

    @staticmethod
    def to_float(decimal_mark: str = ".") -> DataType:
        return DataType("double")

    @staticmethod
    def to_bool() -> DataType:
        return DataType("boolean")

    @staticmethod
    def to_datetime(formats: Any = None) -> DataType:
        if isinstance(formats, str):
            formats = [formats]
        return DataType("datetime", formats)

    def _to_json(self) -> Any:
        return {"type": self.kind, "formats": self.formats} if self.formats else self.kind

    def __repr__(self) -> str:
        return f"DataType({self.kind!r})"


_TYPE_ALIASES = {
    "str": "string",
    "string": "string",
    "int": "long",
    "long": "long",
    "integer": "long",
    "float": "double",
    "double": "double",
    "bool": "boolean",
    "boolean": "boolean",
    "datetime": "datetime",
}


def _column_types(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UserErrorException(
            f"set_column_types must be a dict of column name -> DataType, got {type(value).__name__}"
        )
    out: dict[str, Any] = {}
    for column, kind in value.items():
        if isinstance(kind, DataType):
            out[str(column)] = kind._to_json()
        elif isinstance(kind, type) and kind.__name__ in _TYPE_ALIASES:
            out[str(column)] = _TYPE_ALIASES[kind.__name__]
        elif isinstance(kind, str) and kind.lower() in _TYPE_ALIASES:
            out[str(column)] = _TYPE_ALIASES[kind.lower()]
        else:
            raise UserErrorException(
                f"set_column_types[{column!r}]: expected a DataType (DataType.to_long(), ...), "
                f"got {kind!r}"
            )
    return dict(sorted(out.items()))


def delimited_settings(
    *,
    separator: str = ",",
    header: Any = True,
    include_path: bool = False,
    infer_column_types: bool = True,
    set_column_types: Any = None,
    encoding: str = "utf8",
    partition_format: str | None = None,
    support_multi_line: bool = False,
    empty_as_string: bool = False,
    path_glob: str | None = None,
) -> dict[str, Any]:
    if not isinstance(separator, str) or not separator:
        raise UserErrorException(f"separator must be a non-empty string, got {separator!r}")
    settings = {
        "format": "delimited",
        "separator": separator,
        "header": _header_mode(header),
        "include_path": bool(include_path),
        "infer_column_types": bool(infer_column_types),
        "set_column_types": _column_types(set_column_types),
        "encoding": str(encoding),
        "partition_format": partition_format,
        "support_multi_line": bool(support_multi_line),
        "empty_as_string": bool(empty_as_string),
    }
    if path_glob is not None:
        settings["path_glob"] = _check_glob(path_glob)
    return settings


def parquet_settings(
    *,
    include_path: bool = False,
    set_column_types: Any = None,
    partition_format: str | None = None,
    path_glob: str | None = None,
) -> dict[str, Any]:
    settings = {
        "format": "parquet",
        "include_path": bool(include_path),
        "set_column_types": _column_types(set_column_types),
        "partition_format": partition_format,
    }
    if path_glob is not None:
        settings["path_glob"] = _check_glob(path_glob)
    return settings


def _check_glob(path_glob: Any) -> str:
    from mlpipe_provider.datastores import safe_relative_path

    if not isinstance(path_glob, str) or not path_glob.strip("/"):
        raise UserErrorException(f"path_glob must be a non-empty glob, got {path_glob!r}")
    return safe_relative_path(path_glob, what="path_glob")


# --- where a dataset's files are ----------------------------------------------------------------


def _parse_paths(path: Any, what: str) -> tuple[list[dict[str, str]], Any]:
    """``([{"datastore", "path"}], workspace or None)`` from v1's accepted path forms."""
    from mlpipe_provider.datastores import safe_relative_path
    from mlpipe_provider.sdk.data import DataReference, _datastore_name
    from mlpipe_provider.sdk.datapath import DataPath

    items = path if isinstance(path, list) else [path]
    if not items:
        raise UserErrorException(f"{what}: path is an empty list")
    entries: list[dict[str, str]] = []
    workspace = None
    for item in items:
        if isinstance(item, DataPath):
            store, rel = item._datastore, item.path_on_datastore
        elif isinstance(item, DataReference):
            store, rel = item.datastore, item.path_on_datastore
        elif isinstance(item, tuple) and len(item) == 2:
            store, rel = item
        elif isinstance(item, str):
            if "://" in item:
                raise NotSupportedError(
                    f"{what}: URL paths ({item!r}) are not supported by mlpipe; register the "
                    "storage as a datastore and pass (datastore, 'relative/path')"
                )
            raise UserErrorException(
                f"{what}: a path must be (datastore, 'relative/path') or a DataPath, got the "
                f"string {item!r}"
            )
        else:
            raise UserErrorException(
                f"{what}: a path must be (datastore, 'relative/path'), a DataPath or a list of "
                f"them, got {type(item).__name__}"
            )
        if store is None:
            raise UserErrorException(f"{what}: every path needs a datastore")
        name = _datastore_name(store)
        if rel is not None and not isinstance(rel, str):
            raise UserErrorException(
                f"{what}: the path on datastore {name!r} must be a string, got {rel!r}"
            )
        entries.append({"datastore": name, "path": safe_relative_path(rel, what=f"{what} path")})
        workspace = workspace or getattr(store, "workspace", None)
    return entries, workspace


def _resolve_view(
    definition: dict[str, Any], workspace: Any, what: str, *, fetch: bool = True
) -> dict[str, dataset_files.MatchedFile]:
    """``{view path: file}`` for the files a definition names, on this machine: files of an
    object store are downloaded into a folder kept for this process (``fetch=False``: only
    listed, their ``local`` left empty, to check that anything matches)."""
    entries = []
    for entry in definition["paths"]:
        if "local" in entry:
            root, name = Path(entry["local"]), "local"
        else:
            if workspace is None:
                raise UserErrorException(
                    f"{what}: the dataset's workspace is unknown; create it from Datastore "
                    "objects, or get it with Dataset.get_by_name(workspace, name)"
                )
            from mlpipe_provider.datastores import open_datastore

            name = entry["datastore"]
            store = open_datastore(workspace._dir, workspace._config, name)
            if not store.is_local:
                entries.append(_remote_entry(store, name, entry["path"], what, fetch))
                continue
            base, _ = dataset_files.split_pattern(entry["path"])
            store.local_path(base, what=f"{what} path")  # refuses escapes
            root = store.local_path("", what=f"{what} datastore")
        view_base, files = dataset_files.match_local(name, root, entry["path"], what=what)
        entries.append((name, view_base, files))
    return dataset_files.view(entries)


_DOWNLOADS: list[str] = []


def _download_folder() -> Path:
    """One folder per process for dataset files read from object stores, removed at exit."""
    if not _DOWNLOADS:
        import atexit

        _DOWNLOADS.append(tempfile.mkdtemp(prefix="mlpipe-dataset-remote-"))
        atexit.register(shutil.rmtree, _DOWNLOADS[0], True)
    return Path(_DOWNLOADS[0])


def _remote_entry(
    store: Any, name: str, pattern: str, what: str, fetch: bool
) -> tuple[str, str, list[dataset_files.MatchedFile]]:
    """``(datastore, view base, files)`` for a path on an object store (one listing; the files
    are downloaded when ``fetch``)."""
    from mlpipe_provider.runtime.datasets import match_remote

    view_base, found = match_remote(store, name, pattern, what=what)
    if not fetch:
        return name, view_base, [dataset_files.MatchedFile(name, f.path, "") for f in found]
    target = Path(tempfile.mkdtemp(dir=_download_folder()))
    locals_ = [os.fspath(target / f.path) for f in found]
    for path in locals_:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    if found:
        store.fs.get([f.remote.path for f in found], locals_)
    files = [
        dataset_files.MatchedFile(name, f.path, lp) for f, lp in zip(found, locals_, strict=True)
    ]
    return name, view_base, files


# --- datasets ---------------------------------------------------------------------------------


class AbstractDataset:
    """What file and tabular datasets share: a definition, and a registration if registered."""

    _dataset_type = "abstract"

    def __init__(self) -> None:
        raise UserErrorException(
            f"{type(self).__name__} is not constructed directly: use Dataset.File.from_files, "
            "Dataset.Tabular.from_delimited_files or Dataset.get_by_name"
        )

    @classmethod
    def _create(
        cls,
        definition: dict[str, Any],
        workspace: Any = None,
        registration: dict[str, Any] | None = None,
    ) -> AbstractDataset:
        dataset = object.__new__(_CLASSES[definition["type"]])
        dataset._definition = definition
        dataset._workspace = workspace
        dataset._registration = dict(registration) if registration else None
        return dataset

    # --- v1 attributes ------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        return self._registration["name"] if self._registration else None

    @property
    def version(self) -> int | None:
        return self._registration["version"] if self._registration else None

    @property
    def id(self) -> str | None:
        return self._registration["id"] if self._registration else None

    @property
    def description(self) -> str | None:
        return self._registration.get("description") if self._registration else None

    @property
    def tags(self) -> dict[str, str]:
        return dict(self._registration.get("tags") or {}) if self._registration else {}

    @property
    def workspace(self) -> Any:
        return self._workspace

    # --- what the compiler reads (read-only; not v1 API) --------------------------------------
    @property
    def definition(self) -> dict[str, Any]:
        """What the dataset is (type, paths, tabular options), as plain JSON."""
        return copy.deepcopy(self._definition)

    @property
    def registration(self) -> dict[str, Any] | None:
        """Its registry record's name, version, id, ...; None when not registered."""
        return dict(self._registration) if self._registration is not None else None

    # --- registry -----------------------------------------------------------------------------
    def register(
        self,
        workspace: Any,
        name: str,
        description: str | None = None,
        tags: dict | None = None,
        create_new_version: bool = False,
    ) -> AbstractDataset:
        """Register this definition under ``name``; returns the registered dataset (as v1)."""
        if any("local" in entry for entry in self._definition["paths"]):
            raise UserErrorException(
                "a dataset over a step's local files cannot be registered; register the "
                "producing step's output with OutputFileDatasetConfig.register_on_complete"
            )
        for entry in self._definition["paths"]:
            if entry["datastore"] not in workspace._config.datastores:
                known = ", ".join(sorted(workspace._config.datastores)) or "none"
                raise UserErrorException(
                    f"dataset {name!r}: unknown datastore {entry['datastore']!r} "
                    f"(workspace has: {known})"
                )
        record = dataset_registry.register(
            workspace._dir,
            name,
            self._definition,
            description=description,
            tags=tags,
            create_new_version=create_new_version,
        )
        return _from_record(workspace, record)

    def unregister_all_versions(self) -> None:
        if self._registration is None or self._workspace is None:
            raise UserErrorException("this dataset is not registered")
        dataset_registry.unregister_all_versions(self._workspace._dir, self._registration["name"])

    @staticmethod
    def get_by_name(workspace: Any, name: str, version: Any = "latest") -> AbstractDataset:
        dataset = _from_record(workspace, dataset_registry.get(workspace._dir, name, version))
        # what the program asked for, so the designer writes "latest" back as latest rather
        # than pinning the version it resolved to today
        dataset._asked_version = version
        return dataset

    @staticmethod
    def get_by_id(workspace: Any, id: str, **kwargs: Any) -> AbstractDataset:
        """A registered version by its id; inside a step, also an input dataset by the value its
        argument received (v1 passes a dataset's id there; mlpipe passes its local path)."""
        local = _input_dataset_by_value(id)
        if local is not None:
            return local
        workspace_dir = getattr(workspace, "_dir", None)
        record = dataset_registry.get_by_id(workspace_dir, id) if workspace_dir else None
        if record is None:
            raise UserErrorException(f"no registered dataset has id {id!r}")
        return _from_record(workspace, record)

    @staticmethod
    def get_all(workspace: Any) -> dict[str, AbstractDataset]:
        return {
            name: AbstractDataset.get_by_name(workspace, name)
            for name in dataset_registry.names(workspace._dir)
        }

    # --- consumption by a step ----------------------------------------------------------------
    def default_input_name(self) -> str:
        """The input name a step gives it when the pipeline names none (not v1 API)."""
        return self._default_input_name()

    def _default_input_name(self) -> str:
        if self.name:
            cleaned = _IDENTIFIER_BAD.sub("_", self.name)
            return cleaned if _INPUT_NAME_RE.match(cleaned) else f"_{cleaned}"
        canonical = json.dumps(self._definition, sort_keys=True).encode()
        return f"dataset_{hashlib.blake2s(canonical, digest_size=4).hexdigest()}"

    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(name, self)

    # --- local access ---------------------------------------------------------------------------
    def _files(self, *, fetch: bool = True) -> dict[str, dataset_files.MatchedFile]:
        return _resolve_view(self._definition, self._workspace, self._label(), fetch=fetch)

    def _label(self) -> str:
        return f"dataset {self.name!r}" if self.name else type(self).__name__

    def __repr__(self) -> str:
        shown = {"source": [_describe(p) for p in self._definition["paths"]]}
        if "tabular" in self._definition:
            shown["read"] = self._definition["tabular"].get("format")
        if self._registration:
            shown["registration"] = {
                "name": self.name,
                "version": self.version,
                "id": self.id,
                "description": self.description,
            }
        return f"{type(self).__name__}\n{json.dumps(shown, indent=2)}"


def _describe(entry: dict[str, str]) -> str:
    if "local" in entry:
        return os.path.join(entry["local"], entry.get("path") or "")
    return f"('{entry['datastore']}', '{entry['path']}')"


class _MountContext:
    """What ``FileDataset.mount()`` returns: a folder holding the files, as a context manager."""

    def __init__(self, dataset: FileDataset, mount_point: str | None):
        self._dataset = dataset
        self._requested = mount_point
        self.mount_point: str | None = None
        self._temporary: str | None = None

    def start(self) -> None:
        direct = self._dataset._direct_folder()
        if direct is not None and self._requested is None:
            self.mount_point = str(direct)
            return
        target = self._requested or tempfile.mkdtemp(prefix="mlpipe-dataset-")
        if self._requested is None:
            self._temporary = target
        self._dataset.download(target, overwrite=True)
        self.mount_point = target

    def stop(self) -> None:
        if self._temporary:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None

    def __enter__(self) -> _MountContext:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class FileDataset(AbstractDataset):
    """A set of files in datastores (v1's ``azureml.data.FileDataset``)."""

    _dataset_type = "file"

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(self._default_input_name(), self, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(
            self._default_input_name(), self, "download", path_on_compute
        )

    def as_hdfs(self) -> Any:
        raise NotSupportedError("FileDataset.as_hdfs is not supported by mlpipe (no HDFS)")

    def to_path(self) -> list[str]:
        """The dataset's files as paths relative to the folder a step sees (``/a/b.csv``)."""
        return [f"/{rel}" for rel in self._files()]

    def download(
        self,
        target_path: str | None = None,
        overwrite: bool = False,
        ignore_not_found: bool = False,
    ) -> list[str]:
        """Copy the files into ``target_path`` (a new temporary folder by default)."""
        target = Path(target_path or tempfile.mkdtemp(prefix="mlpipe-dataset-"))
        written = []
        for rel, file in self._files().items():
            dest = target / rel
            if dest.exists() and not overwrite:
                raise UserErrorException(
                    f"{self._label()}: {str(dest)!r} already exists (pass overwrite=True)"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file.local, dest)
            written.append(str(dest))
        return written

    def mount(self, mount_point: str | None = None, **kwargs: Any) -> _MountContext:
        """A context whose ``mount_point`` holds the files (v1 mounted; mlpipe reads in place
        when the dataset is one local folder, and copies otherwise)."""
        return _MountContext(self, mount_point)

    def _direct_folder(self) -> Path | None:
        """The local folder that is exactly this dataset, if there is one (no copy needed)."""
        paths = self._definition["paths"]
        if len(paths) != 1:
            return None
        entry = paths[0]
        base, glob = dataset_files.split_pattern(entry.get("path") or "")
        if glob not in (None, "**"):
            return None
        if "local" in entry:
            folder = Path(entry["local"]) / base
        else:
            if self._workspace is None:
                return None
            from mlpipe_provider.datastores import open_datastore

            store = open_datastore(
                self._workspace._dir, self._workspace._config, entry["datastore"]
            )
            if not store.is_local:
                return None
            folder = store.local_path(base, what=f"{self._label()} path")
        return folder if folder.is_dir() else None


class TabularDataset(AbstractDataset):
    """Rows read from delimited or parquet files (v1's ``azureml.data.TabularDataset``)."""

    _dataset_type = "tabular"

    @property
    def _settings(self) -> dict[str, Any]:
        return self._definition["tabular"]

    def _files(self, *, fetch: bool = True) -> dict[str, dataset_files.MatchedFile]:
        files = super()._files(fetch=fetch)
        path_glob = self._settings.get("path_glob")
        if path_glob:
            regex = dataset_files.glob_regex(path_glob)
            files = {rel: f for rel, f in files.items() if regex.match(rel)}
        return files

    def to_pandas_dataframe(
        self, on_error: str = "null", out_of_range_datetime: str = "null"
    ) -> Any:
        """Read every file into one pandas DataFrame (needs pandas; parquet also pyarrow)."""
        pd = _pandas("TabularDataset.to_pandas_dataframe()")
        settings = self._settings
        if settings.get("partition_format"):
            raise NotSupportedError(
                "TabularDataset.to_pandas_dataframe: partition_format is not supported by mlpipe"
            )
        frames = []
        columns = None
        for index, (rel, file) in enumerate(self._files().items()):
            if settings["format"] == "parquet":
                frame = pd.read_parquet(file.local)
            else:
                header = settings["header"]
                has_header = header == "all_files" or (header == "first_file" and index == 0)
                frame = pd.read_csv(
                    file.local,
                    sep=settings["separator"],
                    header=0 if has_header else None,
                    dtype=None if settings["infer_column_types"] else str,
                    encoding=settings["encoding"],
                    keep_default_na=not settings["empty_as_string"],
                )
                if header == "none":
                    frame.columns = [f"Column{i + 1}" for i in range(len(frame.columns))]
                elif header == "first_file":
                    if columns is None:
                        columns = list(frame.columns)
                    else:
                        frame.columns = columns[: len(frame.columns)]
            if settings["include_path"]:
                frame.insert(0, "Path", f"/{rel}")
            frames.append(frame)
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        for column, kind in (settings.get("set_column_types") or {}).items():
            if column in frame.columns:
                frame[column] = _convert(pd, frame[column], kind)
        return frame

    def to_csv_files(self, separator: str = ",") -> FileDataset:
        """The rows as CSV files: the same files when they already are, else converted."""
        settings = self._settings
        if (
            settings["format"] == "delimited"
            and settings["separator"] == separator
            and settings["header"] == "all_files"
            and not settings["include_path"]
            and not settings.get("set_column_types")
        ):
            definition = dict(self._definition)
            definition.pop("tabular")
            paths = [dict(p) for p in definition["paths"]]
            if settings.get("path_glob"):
                paths = [_with_glob(p, settings["path_glob"]) for p in paths]
            return AbstractDataset._create(dataset_files.definition("file", paths), self._workspace)
        folder = tempfile.mkdtemp(prefix="mlpipe-csv-")
        self.to_pandas_dataframe().to_csv(
            os.path.join(folder, "part-00000.csv"), sep=separator, index=False
        )
        return AbstractDataset._create(
            dataset_files.definition("file", [{"local": folder, "path": ""}])
        )

    def to_parquet_files(self) -> FileDataset:
        folder = tempfile.mkdtemp(prefix="mlpipe-parquet-")
        self.to_pandas_dataframe().to_parquet(os.path.join(folder, "part-00000.parquet"))
        return AbstractDataset._create(
            dataset_files.definition("file", [{"local": folder, "path": ""}])
        )


def _with_glob(entry: dict[str, str], glob: str) -> dict[str, str]:
    base = entry.get("path") or ""
    return {**entry, "path": f"{base.rstrip('/')}/{glob}" if base else glob}


def _convert(pd: Any, series: Any, kind: Any) -> Any:
    name = kind["type"] if isinstance(kind, dict) else kind
    if name == "string":
        return series.astype("string")
    if name == "long":
        return pd.to_numeric(series).astype("Int64")
    if name == "double":
        return pd.to_numeric(series).astype("float64")
    if name == "boolean":
        return series.map(
            lambda v: str(v).strip().lower() in ("true", "1", "yes") if v == v else None
        ).astype("boolean")
    formats = kind.get("formats") if isinstance(kind, dict) else None
    return pd.to_datetime(series, format=formats[0] if formats else None)


_CLASSES: dict[str, type[AbstractDataset]] = {"file": FileDataset, "tabular": TabularDataset}


def _from_record(workspace: Any, record: dict[str, Any]) -> AbstractDataset:
    registration = {k: record.get(k) for k in ("name", "version", "id", "description", "tags")}
    return AbstractDataset._create(record["definition"], workspace, registration)


# --- factories (Dataset.File, Dataset.Tabular) --------------------------------------------------


def _validate(dataset: AbstractDataset, validate: bool) -> AbstractDataset:
    """v1 checks at creation that data can be loaded; mlpipe checks files match (local stores)."""
    if not validate or dataset._workspace is None:
        return dataset
    try:
        found = dataset._files(fetch=False)
    except NotSupportedError:
        raise
    except UserErrorException as exc:
        raise UserErrorException(f"cannot load any data from the specified path: {exc}") from None
    if not found:
        paths = ", ".join(_describe(p) for p in dataset._definition["paths"])
        raise UserErrorException(
            f"cannot load any data from the specified path: {paths} matches no files "
            "(pass validate=False to create the dataset anyway)"
        )
    return dataset


class FileDatasetFactory:
    """``Dataset.File``."""

    @staticmethod
    def from_files(
        path: Any, validate: bool = True, partition_format: str | None = None, is_file: bool = False
    ) -> FileDataset:
        if partition_format is not None:
            raise NotSupportedError("Dataset.File.from_files: partition_format is not supported")
        entries, workspace = _parse_paths(path, "Dataset.File.from_files")
        dataset = AbstractDataset._create(dataset_files.definition("file", entries), workspace)
        return _validate(dataset, validate)

    @staticmethod
    def upload_directory(
        src_dir: str,
        target: Any,
        pattern: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> FileDataset:
        """Upload a local folder to ``target`` ``(datastore, path)``; a dataset of what landed."""
        (entry,), workspace = _parse_paths(target, "Dataset.File.upload_directory")
        if workspace is None:
            raise UserErrorException(
                "Dataset.File.upload_directory: target must name a Datastore object"
            )
        from mlpipe_provider.sdk.datastore import Datastore

        store = Datastore(workspace, entry["datastore"])
        source = Path(src_dir)
        regex = dataset_files.glob_regex(pattern) if pattern else None
        files = [
            str(p)
            for p in sorted(source.rglob("*"))
            if p.is_file() and (regex is None or regex.match(p.relative_to(source).as_posix()))
        ]
        store.upload_files(
            files,
            relative_root=str(source),
            target_path=entry["path"] or None,
            overwrite=overwrite,
            show_progress=show_progress,
        )
        return FileDatasetFactory.from_files((store, entry["path"]), validate=False)


class TabularDatasetFactory:
    """``Dataset.Tabular``."""

    @staticmethod
    def from_delimited_files(
        path: Any,
        validate: bool = True,
        include_path: bool = False,
        infer_column_types: bool = True,
        set_column_types: Any = None,
        separator: str = ",",
        header: Any = True,
        partition_format: str | None = None,
        support_multi_line: bool = False,
        empty_as_string: bool = False,
        encoding: str = "utf8",
    ) -> TabularDataset:
        entries, workspace = _parse_paths(path, "Dataset.Tabular.from_delimited_files")
        settings = delimited_settings(
            separator=separator,
            header=header,
            include_path=include_path,
            infer_column_types=infer_column_types,
            set_column_types=set_column_types,
            encoding=encoding,
            partition_format=partition_format,
            support_multi_line=support_multi_line,
            empty_as_string=empty_as_string,
        )
        dataset = AbstractDataset._create(
            dataset_files.definition("tabular", entries, settings), workspace
        )
        return _validate(dataset, validate)

    @staticmethod
    def from_parquet_files(
        path: Any,
        validate: bool = True,
        include_path: bool = False,
        set_column_types: Any = None,
        partition_format: str | None = None,
    ) -> TabularDataset:
        entries, workspace = _parse_paths(path, "Dataset.Tabular.from_parquet_files")
        settings = parquet_settings(
            include_path=include_path,
            set_column_types=set_column_types,
            partition_format=partition_format,
        )
        dataset = AbstractDataset._create(
            dataset_files.definition("tabular", entries, settings), workspace
        )
        return _validate(dataset, validate)

    @staticmethod
    def from_json_lines_files(*args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError("Dataset.Tabular.from_json_lines_files is not supported by mlpipe")

    @staticmethod
    def from_sql_query(*args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError("Dataset.Tabular.from_sql_query is not supported by mlpipe")


class Dataset(AbstractDataset):
    """v1's ``azureml.core.Dataset``: the factories and the registry look-ups."""

    File = FileDatasetFactory
    Tabular = TabularDatasetFactory


# --- consumption ------------------------------------------------------------------------------


class DatasetConsumptionConfig:
    """How a step consumes a dataset: under a name, directly, mounted or downloaded."""

    def __init__(
        self, name: str, dataset: Any, mode: str = "direct", path_on_compute: str | None = None
    ):
        from mlpipe_provider.sdk.output_dataset import OutputDatasetConfig

        if name is not None and (not isinstance(name, str) or not _INPUT_NAME_RE.match(name)):
            raise UserErrorException(
                f"dataset input name {name!r} must start with a letter or '_' and contain only "
                "letters, digits and '_'"
            )
        if not isinstance(dataset, (AbstractDataset, OutputDatasetConfig)) and not (
            _is_dataset_parameter(dataset)
        ):
            raise UserErrorException(
                f"DatasetConsumptionConfig {name!r}: dataset must be a FileDataset, "
                "TabularDataset, OutputFileDatasetConfig or a PipelineParameter whose "
                f"default_value is a dataset, got {type(dataset).__name__}"
            )
        if mode not in CONSUMPTION_MODES:
            raise UserErrorException(
                f"DatasetConsumptionConfig {name!r}: mode must be one of "
                f"{', '.join(CONSUMPTION_MODES)}, got {mode!r}"
            )
        self._name = name
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = path_on_compute

    @property
    def name(self) -> str | None:
        if self._name is None:  # an unnamed OutputFileDatasetConfig's as_input()
            return getattr(self.dataset, "name", None)
        return self._name

    @property
    def given_name(self) -> str | None:
        """The name the pipeline gave this input, if any (``name`` falls back to the dataset's)."""
        return self._name

    @property
    def _is_tabular(self) -> bool:
        return _dataset_type(self.dataset) == "tabular"

    def _with(self, mode: str, path_on_compute: str | None) -> DatasetConsumptionConfig:
        if mode != "direct" and self._is_tabular:
            raise UserErrorException(
                f"dataset input {self.name!r}: a tabular dataset cannot be {mode}ed; a step "
                "consumes it directly (as_named_input(name)) and reads it with "
                "Run.get_context().input_datasets[name].to_pandas_dataframe()"
            )
        clone = copy.copy(self)
        clone.mode = mode
        clone.path_on_compute = path_on_compute
        return clone

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return self._with("mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return self._with("download", path_on_compute)

    def as_direct(self) -> DatasetConsumptionConfig:
        return self._with("direct", None)

    def as_hdfs(self) -> Any:
        raise NotSupportedError("DatasetConsumptionConfig.as_hdfs is not supported by mlpipe")

    def __str__(self) -> str:
        from mlpipe_provider.sdk.data import DATAREFERENCE_TOKEN

        if self.name is None:
            raise UserErrorException(
                "an unnamed dataset input cannot be used inside a string argument: give it a name"
            )
        return f"{DATAREFERENCE_TOKEN}{self.name}"

    def __repr__(self) -> str:
        return (
            f"DatasetConsumptionConfig(name={self.name!r}, mode={self.mode!r}, "
            f"dataset={type(self.dataset).__name__})"
        )


def _is_dataset_parameter(value: Any) -> bool:
    """v1's dataset-valued ``PipelineParameter`` (its default is the dataset a run consumes
    unless the submit names another)."""
    from mlpipe_provider.sdk.data import PipelineParameter

    return isinstance(value, PipelineParameter) and isinstance(value.default_value, AbstractDataset)


def _dataset_type(dataset: Any) -> str:
    if _is_dataset_parameter(dataset):
        dataset = dataset.default_value
    if isinstance(dataset, AbstractDataset):
        return dataset._dataset_type
    return getattr(dataset, "_dataset_type", "file")


# --- inside a step: Run.input_datasets ----------------------------------------------------------


def input_datasets_from_env() -> dict[str, Any]:
    """``Run.get_context().input_datasets``: a path for mounted or downloaded file datasets (as
    v1), a dataset object over the local files for direct and tabular inputs."""
    raw = os.environ.get(INPUT_DATASETS_ENV)
    if not raw:
        return {}
    out: dict[str, Any] = {}
    for name, info in json.loads(raw).items():
        if info["type"] == "file" and info["mode"] in ("mount", "download"):
            out[name] = info["path"]
            continue
        tabular = info.get("tabular")
        definition = dataset_files.definition(info["type"], [_local_entry(info["path"])], tabular)
        out[name] = AbstractDataset._create(definition, None, info.get("registered"))
    return out


def _local_entry(path: str) -> dict[str, str]:
    """A step's local input as a dataset path: a folder, or one file (a single-file dataset)."""
    if os.path.isfile(path):
        return {"local": os.path.dirname(path), "path": os.path.basename(path)}
    return {"local": path, "path": ""}


def _input_dataset_by_value(value: Any) -> AbstractDataset | None:
    raw = os.environ.get(INPUT_DATASETS_ENV)
    if not raw or not isinstance(value, str):
        return None
    for name, info in json.loads(raw).items():
        registered = info.get("registered") or {}
        if value in (info["path"], registered.get("id")):
            dataset = input_datasets_from_env()[name]
            if isinstance(dataset, str):  # a mounted file dataset: get_by_id gives the dataset
                definition = dataset_files.definition("file", [_local_entry(dataset)])
                dataset = AbstractDataset._create(definition, None, info.get("registered"))
            return dataset
    return None
