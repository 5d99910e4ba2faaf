"""Metrics a step logs (``run.log`` and friends), kept as JSON lines beside its outputs.

Appending one line per call means a step killed half-way leaves the metrics it had logged, and
reading them back needs no lock. ``aggregate`` turns the lines into v1's ``get_metrics()`` shape.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

METRICS_FILE_ENV = "MLPIPE_METRICS_FILE"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    return str(value)


def append_metric(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """One line per call. Keys keep the order they were logged in (no ``sort_keys``): a row's or
    a table's columns come back in v1's order, so the designer draws the first as the x axis."""
    line = json.dumps(_jsonable(record)) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    records = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a crash; everything before it is intact
    return records


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """v1's shape: a scalar logged once is a value, logged repeatedly a list; tables are dicts of lists.

    Scalars are gathered per name first, so a scalar whose value is itself a list is not mistaken
    for earlier repetitions of it.
    """
    metrics: dict[str, Any] = {}
    scalars: dict[str, list[Any]] = {}
    for record in records:
        kind, name, value = record.get("kind"), record.get("name"), record.get("value")
        if name is None:
            continue
        if kind == "scalar":
            series = scalars.setdefault(name, [])
            series.append(value)
            metrics[name] = series[0] if len(series) == 1 else list(series)
            continue
        scalars.pop(name, None)  # another kind under the same name replaces the scalar series
        if kind == "list":
            metrics[name] = list(value or [])
        elif kind == "row":
            table = metrics.get(name)
            if not isinstance(table, dict):
                table = metrics[name] = {}
            for column, cell in (value or {}).items():
                table.setdefault(column, []).append(cell)
        elif kind == "table":
            metrics[name] = {
                k: list(v) if isinstance(v, list) else [v] for k, v in (value or {}).items()
            }
        elif kind == "image":
            metrics[name] = value
    return metrics
