"""Built-in module "Clean Missing Data": drop or fill missing values in the chosen columns."""

from _common import check_columns, column_list, fail, get_run, read_table, start, write_table

MODULE = "Clean Missing Data"
args, params = start(MODULE)
frame = read_table(args.dataset)
columns = column_list(params["columns"]) or list(frame.columns)
check_columns(MODULE, "params['columns']", frame, columns)
missing_before = int(frame[columns].isna().sum().sum())
mode = params["cleaning_mode"]
if mode == "Remove entire row":
    frame = frame.dropna(subset=columns).reset_index(drop=True)
elif mode == "Remove entire column":
    frame = frame.drop(columns=[c for c in columns if frame[c].isna().any()])
else:
    for column in columns:
        values = frame[column]
        if not values.isna().any():
            continue
        numeric = values.dtype.kind in "iuf"
        if mode in ("Replace with mean", "Replace with median") and not numeric:
            fail(MODULE, "params['cleaning_mode']", f"{mode!r} needs numeric column {column!r}")
        if mode == "Replace with mean":
            fill = values.mean()
        elif mode == "Replace with median":
            fill = values.median()
        elif mode == "Replace with mode":
            fill = values.mode().iloc[0]
        else:
            fill = params["replacement_value"]
            if numeric:
                try:
                    fill = float(fill)
                except ValueError:
                    fail(
                        MODULE,
                        "params['replacement_value']",
                        f"{fill!r} is not a number, and column {column!r} is numeric",
                    )
        frame[column] = values.fillna(fill)
write_table(frame, args.cleaned_dataset)
run = get_run()
run.log("Missing values", missing_before)
run.log("Rows", len(frame))
