"""Built-in module "Normalize Data": z-score or min-max scaling of numeric columns."""

from _common import check_columns, column_list, fail, get_run, read_table, start, write_table

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
for column in columns:
    values = frame[column]
    if values.dtype.kind not in "iuf":
        fail(MODULE, "params['columns']", f"column {column!r} is not numeric")
    values = values.astype(float)
    if params["transformation_method"] == "ZScore":
        spread = values.std(ddof=0)
        frame[column] = (values - values.mean()) / (spread if spread else 1.0)
    else:
        spread = values.max() - values.min()
        frame[column] = (values - values.min()) / (spread if spread else 1.0)
write_table(frame, args.transformed_dataset)
get_run().log("Normalized columns", len(columns))
