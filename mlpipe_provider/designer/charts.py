"""A step's metrics as the designer's Metrics panel draws them: chart-ready JSON.

The input is what the step logged through v1's ``Run`` API, as the metrics file keeps it (one
record per call, with its kind: ``run.log``, ``log_list``, ``log_row``, ``log_table``,
``log_confusion_matrix``, ``log_accuracy_table``, ``log_image``). Working from the records rather
than from ``get_metrics()``'s aggregate keeps what the aggregate loses: a scalar logged
repeatedly and a list look alike there, a row table and a logged table too, and an image is just
a string. Where the records are gone (a step record without its run folder) the aggregate is
read as well as it can be.

Each entry is ``{"name", "kind", "source", ...}`` with ``kind`` one of:

- ``scalar``: ``value`` (a metric logged once);
- ``line``: ``x_label``, ``y_label``, ``series: [{"label", "x", "y"}]`` (a repeated scalar over
  its ``step``, a numeric list over its index, a numeric table over its first column, an
  accuracy table as ROC curves), with ``table`` too when it came from a table;
- ``table``: ``columns``, ``rows`` and ``total_rows`` (rows past ``MAX_ROWS`` are left out);
- ``confusion_matrix``: ``labels`` and ``matrix`` (v1's ``{"schema_type": "confusion_matrix",
  "data": {"class_labels", "matrix"}}``);
- ``image``: ``file`` (the file the step keeps among its artifacts);
- ``json``: ``value`` and a ``note``, for a value none of the above can show.

Long series are thinned to ``MAX_POINTS`` points (evenly, keeping the last), with
``points_logged`` saying how many there were, so a metric logged every batch stays a small answer.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
from typing import Any

from mlpipe_provider.metrics import aggregate

#: points per drawn series; more are thinned evenly
MAX_POINTS = 1000
#: rows of a table sent to the page
MAX_ROWS = 200
#: a table with up to this many numeric columns beside its first is also drawn as lines
MAX_LINES = 6
_NON_FINITE = {"nan", "inf", "-inf", "NaN", "Infinity", "-Infinity"}


def charts(records: list[dict[str, Any]] | None, metrics: dict[str, Any] | None) -> list[dict]:
    """The chart entries of one step, in the order its metrics were first logged."""
    if records:
        return _from_records(records)
    return [_from_value(str(name), value, None) for name, value in (metrics or {}).items()]


def _from_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    values = aggregate(records)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("name") is not None:
            by_name.setdefault(str(record["name"]), []).append(record)
    out = []
    for name, value in values.items():
        own = by_name.get(str(name), [])
        last = own[-1] if own else {}
        # the records the aggregate kept: those since another kind last replaced the metric
        start = max(
            (i + 1 for i, r in enumerate(own) if r.get("kind") != last.get("kind")), default=0
        )
        current = own[start:]
        entry = _from_value(str(name), value, last.get("kind"), current)
        description = next(
            (r.get("description") for r in reversed(current) if r.get("description")), ""
        )
        if description:
            entry["description"] = str(description)
        out.append(entry)
    return out


def _from_value(
    name: str, value: Any, kind: str | None, records: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    if kind == "image":
        return {"name": name, "kind": "image", "source": "log_image", "file": str(value)}
    if kind == "scalar":
        return _scalar_series(name, records or [])
    if kind == "list":
        return _list(name, value, "log_list")
    if isinstance(value, dict):
        special = _special_table(name, value)
        if special is not None:
            return special
        return _table(name, value, "log_row" if kind == "row" else "log_table" if kind else None)
    if isinstance(value, list):
        return _list(name, value, "log" if kind is None else "log_list")
    return {"name": name, "kind": "scalar", "source": "log", "value": value}


def _scalar_series(name: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """``run.log`` once is a value; repeated, a line over its ``step`` (else the call's index)."""
    values = [r.get("value") for r in records]
    if len(values) == 1:
        return {"name": name, "kind": "scalar", "source": "log", "value": values[0]}
    steps = [r.get("step") for r in records]
    if all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
        x: list[Any] = list(steps)
        x_label = "step"
    else:
        x, x_label = list(range(len(values))), "call"
    if _numeric(values):
        return _line(name, "log", x_label, name, [(name, x, values)])
    return _table(name, {x_label: x, name: values}, "log")


def _list(name: str, value: list[Any], source: str | None) -> dict[str, Any]:
    if _numeric(value) and len(value) > 1:
        return _line(name, source, "index", name, [(name, list(range(len(value))), value)])
    if len(value) == 1 and _numeric(value):
        return {"name": name, "kind": "scalar", "source": source, "value": value[0]}
    return _table(name, {name: value}, source)


def _table(name: str, columns: dict[str, Any], source: str | None) -> dict[str, Any]:
    """A table as rows, and as lines over its first column when every column is numbers."""
    cols = {str(k): v if isinstance(v, list) else [v] for k, v in columns.items()}
    names = list(cols)
    length = max((len(v) for v in cols.values()), default=0)
    rows = [[cols[c][i] if i < len(cols[c]) else None for c in names] for i in range(length)]
    table = {"columns": names, "rows": rows[:MAX_ROWS], "total_rows": length}
    same_length = len({len(v) for v in cols.values()}) == 1
    drawable = 2 <= len(names) <= MAX_LINES + 1 and length > 1 and same_length
    if drawable and all(_numeric(v) for v in cols.values()):
        x_label = names[0]
        lines = [(c, cols[x_label], cols[c]) for c in names[1:]]
        y_label = names[1] if len(names) == 2 else "value"
        entry = _line(name, source, x_label, y_label, lines)
        entry["table"] = table
        return entry
    return {"name": name, "kind": "table", "source": source, **table}


def _special_table(name: str, value: dict[str, Any]) -> dict[str, Any] | None:
    """``log_confusion_matrix`` and ``log_accuracy_table`` keep v1's JSON under one key."""
    if len(value) != 1:
        return None
    key, inner = next(iter(value.items()))
    if key not in ("confusion_matrix", "accuracy_table"):
        return None
    if isinstance(inner, list) and len(inner) == 1:  # the aggregate wraps a lone value
        inner = inner[0]
    if isinstance(inner, str):
        with contextlib.suppress(ValueError):  # not JSON: shown as it is
            inner = json.loads(inner)
    source = f"log_{key}"
    try:
        if key == "confusion_matrix":
            return {"name": name, "kind": "confusion_matrix", "source": source, **_matrix(inner)}
        return _accuracy_roc(name, inner)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        return {
            "name": name,
            "kind": "json",
            "source": source,
            "value": inner,
            "note": f"not v1's {key} shape: {exc}",
        }


def _data(value: Any) -> dict[str, Any]:
    data = value.get("data", value) if isinstance(value, dict) else None
    if not isinstance(data, dict):
        raise ValueError('expected {"schema_type": ..., "data": {...}}')
    return data


def _matrix(value: Any) -> dict[str, Any]:
    data = _data(value)
    labels, matrix = data["class_labels"], data["matrix"]
    if not isinstance(matrix, list) or any(
        not isinstance(row, list) or len(row) != len(matrix) or not _numeric(row) for row in matrix
    ):
        raise ValueError("matrix must be square, of numbers")
    if not isinstance(labels, list) or len(labels) != len(matrix):
        raise ValueError("class_labels must name each row of the matrix")
    return {"labels": [str(label) for label in labels], "matrix": matrix}


def _accuracy_roc(name: str, value: Any) -> dict[str, Any]:
    """v1's accuracy table holds, per class and probability threshold, ``[TP, FP, TN, FN]``:
    its ROC curve per class is (FP / (FP + TN), TP / (TP + FN)) over the thresholds."""
    data = _data(value)
    labels = [str(label) for label in data["class_labels"]]
    tables = data["probability_tables"]
    if not isinstance(tables, list) or len(tables) != len(labels):
        raise ValueError("probability_tables must hold one table per class label")
    lines = []
    for label, table in zip(labels, tables, strict=True):
        fpr, tpr = [], []
        for tp, fp, tn, fn in table:
            fpr.append(fp / (fp + tn) if fp + tn else 0.0)
            tpr.append(tp / (tp + fn) if tp + fn else 0.0)
        lines.append((label, fpr, tpr))
    entry = _line(name, "log_accuracy_table", "False positive rate", "True positive rate", lines)
    entry["thresholds"] = data.get("probability_thresholds")
    return entry


def _line(
    name: str,
    source: str | None,
    x_label: str,
    y_label: str,
    lines: list[tuple[str, list[Any], list[Any]]],
) -> dict[str, Any]:
    series = []
    logged = 0
    for label, xs, ys in lines:
        points = [(x, y) for x, y in zip(xs, ys, strict=False) if _finite(x) and _finite(y)]
        logged = max(logged, len(points))
        points = _thin(points)
        series.append(
            {"label": str(label), "x": [p[0] for p in points], "y": [p[1] for p in points]}
        )
    entry = {
        "name": name,
        "kind": "line",
        "source": source,
        "x_label": x_label,
        "y_label": y_label,
        "series": series,
    }
    if logged > MAX_POINTS:
        entry["points_logged"] = logged
    return entry


def _thin(points: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    if len(points) <= MAX_POINTS:
        return points
    last = len(points) - 1
    picked = sorted({round(i * last / (MAX_POINTS - 1)) for i in range(MAX_POINTS)})
    return [points[i] for i in picked]


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _numeric(values: list[Any]) -> bool:
    """Numbers (the metrics file writes a logged NaN or infinity as a string: those count)."""
    return bool(values) and all(
        _is_number(v) or (isinstance(v, str) and v in _NON_FINITE) for v in values
    )
