"""What every built-in module script shares: its parameters, reading and writing tables, errors.

A table port is a folder holding ``data.csv`` (an input may also be a single CSV or parquet
file, the designer's DataFrameDirectory, or a folder of CSV or parquet files read in name order),
so a DataReference to a plain file feeds any built-in and one built-in's output feeds the next.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from _catalogue import MODULES, parse_value

TABLE_FILE = "data.csv"
META_FILE = "_meta.yaml"  # marks the designer's DataFrameDirectory


class ModuleError(Exception):
    """A problem a user can fix (a parameter, a missing column); reported without a traceback."""


def fail(module: str, field: str, message: str) -> None:
    print(f"built-in module {module!r}, field {field!r}: {message}", file=sys.stderr)
    raise SystemExit(2)


def start(module: str) -> tuple[argparse.Namespace, dict[str, Any]]:
    """Parse the port arguments and the typed ``AML_PARAMETER_*`` values of ``module``."""
    definition = MODULES[module]
    parser = argparse.ArgumentParser(description=definition["description"])
    for port in definition["inputs"]:
        parser.add_argument(f"--{port['name']}", required=not port["is_optional"])
    for port in definition["outputs"]:
        parser.add_argument(f"--{port['name']}", required=True)
    args = parser.parse_args()
    params = {}
    for name, spec in definition["params"].items():
        raw = os.environ.get(f"AML_PARAMETER_{name}", spec["default"])
        try:
            params[name] = parse_value(spec, raw)
        except ValueError as exc:
            fail(module, f"params[{name!r}]", f"{spec['label']!r} {exc}")
    return args, params


def column_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def check_columns(module: str, field: str, frame: pd.DataFrame, columns: list[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        fail(module, field, f"no column {missing} in the dataset (columns: {list(frame.columns)})")


def read_table(path: str) -> pd.DataFrame:
    """A table input, in any of the shapes data arrives in: a CSV or parquet file; a folder
    holding ``data.csv`` (a built-in's output); the designer's DataFrameDirectory (a folder whose
    ``_meta.yaml`` names its data file, parquet, CSV or JSON lines); or a folder of CSV files, or
    else of parquet files, read in name order."""
    source = Path(path)
    if source.is_file():
        return _read_file(source)
    if (source / TABLE_FILE).is_file():
        return pd.read_csv(source / TABLE_FILE)
    if (source / META_FILE).is_file():
        return _read_data_frame_directory(source)
    files = sorted(p for p in source.rglob("*.csv") if p.is_file())
    files = files or sorted(p for p in source.rglob("*.parquet") if p.is_file())
    if not files:
        raise SystemExit(f"no CSV or parquet file in {path}")
    return pd.concat([_read_file(f) for f in files], ignore_index=True)


def _read_file(file: Path) -> pd.DataFrame:
    if file.suffix.lower() == ".parquet":
        return pd.read_parquet(file)  # pyarrow, imported only when a parquet table comes
    return pd.read_csv(file)


def _read_data_frame_directory(folder: Path) -> pd.DataFrame:
    """The designer's DataFrameDirectory: ``_meta.yaml`` says ``format`` and ``data`` (its top-
    level ``key: value`` lines are all that is read, so no YAML library is needed)."""
    fields = {}
    for line in (folder / META_FILE).read_text(encoding="utf-8").splitlines():
        key, colon, value = line.partition(":")
        if colon and not line[:1].isspace():
            fields[key.strip()] = value.strip().strip("'\"")
    data = folder / fields.get("data", "_data.parquet")
    if not data.is_file():
        raise SystemExit(f"{folder / META_FILE} names data file {data.name!r}, not in {folder}")
    kind = fields.get("format", "Parquet").lower()
    if kind == "parquet":
        return pd.read_parquet(data)
    if kind == "csv":
        return pd.read_csv(data)
    if kind in ("jsonl", "json"):
        return pd.read_json(data, lines=True)
    raise SystemExit(
        f"{folder / META_FILE}: format {fields['format']!r} is not Parquet, CSV or JSONL"
    )


def write_table(frame: pd.DataFrame, path: str) -> None:
    """Deterministic bytes for equal tables, so a re-run that computes the same table lets its
    downstream steps reuse (early cutoff)."""
    os.makedirs(path, exist_ok=True)
    frame.to_csv(os.path.join(path, TABLE_FILE), index=False, lineterminator="\n")


def get_run() -> Any:
    from mlpipe_provider.sdk import Run

    return Run.get_context()
