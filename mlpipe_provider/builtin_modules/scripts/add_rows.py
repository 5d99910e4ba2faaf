"""Built-in module "Add Rows": the rows of the second dataset after those of the first.

The two must have the same columns (by name; the second's are put in the first's order).
"""

import pandas as pd
from _common import fail, get_run, read_table, start, write_table

MODULE = "Add Rows"
args, params = start(MODULE)
first, second = read_table(args.dataset1), read_table(args.dataset2)
if set(first.columns) != set(second.columns):
    fail(
        MODULE,
        "inputs_map['dataset2']",
        f"the datasets' columns differ: only in dataset1 {sorted(set(first.columns) - set(second.columns))}, "
        f"only in dataset2 {sorted(set(second.columns) - set(first.columns))}",
    )
result = pd.concat([first, second[list(first.columns)]], ignore_index=True)
write_table(result, args.results_dataset)
get_run().log("Rows", len(result))
