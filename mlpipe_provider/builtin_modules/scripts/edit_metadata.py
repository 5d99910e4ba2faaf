"""Built-in module "Edit Metadata": change the data type of columns and rename them.

A table port is CSV, so what lasts is what the values say: converting to Integer, Double,
Boolean or DateTime rewrites the values (failing on one that does not convert), and new column
names rename. The designer's Categorical and Fields flags have nowhere to live in CSV and are not
offered.
"""

import pandas as pd
from _common import check_columns, column_list, fail, get_run, read_table, start, write_table

MODULE = "Edit Metadata"
args, params = start(MODULE)
frame = read_table(args.dataset)
columns = column_list(params["column"])
check_columns(MODULE, "params['column']", frame, columns)
kind = params["data_type"]
TRUE, FALSE = {"true", "1", "yes", "1.0"}, {"false", "0", "no", "0.0"}


def boolean(value):
    if pd.isna(value):
        return pd.NA
    text = str(value).strip().lower()
    if text in TRUE | FALSE:
        return text in TRUE
    raise ValueError(f"{value!r} is not a Boolean")


for column in columns:
    values = frame[column]
    try:
        if kind == "String":
            frame[column] = values.astype("string")
        elif kind == "Integer":
            numbers = pd.to_numeric(values, errors="raise")
            if (numbers.dropna() % 1 != 0).any():
                raise ValueError("it has values with a fraction")
            frame[column] = numbers.astype("Int64")
        elif kind == "Double":
            frame[column] = pd.to_numeric(values, errors="raise").astype(float)
        elif kind == "Boolean":
            frame[column] = values.map(boolean).astype("boolean")
        elif kind == "DateTime":
            frame[column] = pd.to_datetime(values, format=params["datetime_format"] or None)
    except (ValueError, TypeError) as exc:
        fail(MODULE, "params['data_type']", f"column {column!r} does not convert to {kind}: {exc}")
names = column_list(params["new_column_names"])
if names:
    if len(names) != len(columns):
        fail(
            MODULE,
            "params['new_column_names']",
            f"{len(names)} new names for {len(columns)} columns: name every selected column",
        )
    frame = frame.rename(columns=dict(zip(columns, names, strict=True)))
    if frame.columns.duplicated().any():
        fail(MODULE, "params['new_column_names']", f"duplicate column names: {list(frame.columns)}")
write_table(frame, args.results_dataset)
get_run().log("Edited columns", len(columns))
