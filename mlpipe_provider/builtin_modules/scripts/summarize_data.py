"""Built-in module "Summarize Data": one row of the designer's statistics per column.

Counts for every column; the numeric statistics (quartiles, moments, percentiles) are empty for
a column that is not numeric.
"""

import pandas as pd
from _common import get_run, read_table, start, write_table

MODULE = "Summarize Data"
args, params = start(MODULE)
frame = read_table(args.dataset)
rows = []
for column in frame.columns:
    values = frame[column]
    present = values.dropna()
    mode = present.mode()
    row = {
        "Feature": column,
        "Count": int(present.size),
        "Unique Value Count": int(present.nunique()),
        "Missing Value Count": int(values.isna().sum()),
        "Mode": mode.iloc[0] if len(mode) else None,
    }
    if values.dtype.kind in "iuf" and present.size:
        numbers = present.astype(float)
        row.update(
            {
                "Min": numbers.min(),
                "Max": numbers.max(),
                "Mean": numbers.mean(),
                "Mean Deviation": (numbers - numbers.mean()).abs().mean(),
                "1st Quartile": numbers.quantile(0.25),
                "Median": numbers.median(),
                "3rd Quartile": numbers.quantile(0.75),
                "Range": numbers.max() - numbers.min(),
                "Sample Variance": numbers.var(),
                "Sample Standard Deviation": numbers.std(),
                "Sample Skewness": numbers.skew(),
                "Sample Kurtosis": numbers.kurt(),
            }
        )
        for percent in (0.5, 1, 5, 95, 99, 99.5):
            row[f"P{percent:g}"] = numbers.quantile(percent / 100)
    rows.append(row)
order = ["Feature", "Count", "Unique Value Count", "Missing Value Count", "Min", "Max", "Mean"]
order += ["Mean Deviation", "1st Quartile", "Median", "3rd Quartile", "Mode", "Range"]
order += ["Sample Variance", "Sample Standard Deviation", "Sample Skewness", "Sample Kurtosis"]
order += ["P0.5", "P1", "P5", "P95", "P99", "P99.5"]
write_table(pd.DataFrame(rows, columns=order), args.result_dataset)
get_run().log("Columns summarized", len(rows))
