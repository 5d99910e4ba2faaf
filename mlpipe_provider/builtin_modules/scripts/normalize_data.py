"""Built-in module "Normalize Data": the designer's five transformation methods, in place.

ZScore and MinMax use the column's population statistics; LogNormal maps each value through the
log-normal CDF fitted to the column (maximum likelihood: the mean and population deviation of the
logs; its values must be positive); Logistic and Tanh apply the function to each value. A
constant column (no spread) becomes 0 under ZScore, MinMax and LogNormal, or NaN when
``use_0_for_constant_columns_when_checked`` is off; a column of nothing but missing values is
left alone, as the designer does.
"""

import numpy as np
from _common import check_columns, column_list, fail, get_run, read_table, start, write_table
from scipy.special import ndtr

MODULE = "Normalize Data"
args, params = start(MODULE)
frame = read_table(args.dataset)
columns = column_list(params["columns"])
excluded = column_list(params["exclude_columns"])
check_columns(MODULE, "params['columns']", frame, columns)
check_columns(MODULE, "params['exclude_columns']", frame, excluded)
if not columns:
    columns = [c for c in frame.columns if frame[c].dtype.kind in "iuf"]
columns = [c for c in columns if c not in excluded]
method = params["transformation_method"]
constant = 0.0 if params["use_0_for_constant_columns_when_checked"] else np.nan


def scaled(values, centre, spread):
    """(values - centre) / spread, or the constant-column value where there is no spread."""
    if not spread or np.isnan(spread):
        return values.where(values.isna(), constant)
    return (values - centre) / spread


for column in columns:
    values = frame[column]
    if values.dtype.kind not in "iuf":
        fail(MODULE, "params['columns']", f"column {column!r} is not numeric")
    values = values.astype(float)
    if values.isna().all():
        continue
    if method == "ZScore":
        frame[column] = scaled(values, values.mean(), values.std(ddof=0))
    elif method == "MinMax":
        frame[column] = scaled(values, values.min(), values.max() - values.min())
    elif method == "Logistic":
        frame[column] = 1.0 / (1.0 + np.exp(-values))
    elif method == "Tanh":
        frame[column] = np.tanh(values)
    else:  # LogNormal
        if (values.dropna() <= 0).any():
            fail(
                MODULE,
                "params['transformation_method']",
                f"LogNormal needs positive values: column {column!r} has values <= 0",
            )
        logs = np.log(values)
        z = scaled(logs, logs.mean(), logs.std(ddof=0))
        frame[column] = z if not logs.std(ddof=0) else ndtr(z)
write_table(frame, args.transformed_dataset)
get_run().log("Normalized columns", len(columns))
