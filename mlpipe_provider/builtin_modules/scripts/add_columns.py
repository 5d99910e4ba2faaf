"""Built-in module "Add Columns": the right dataset's columns beside the left's, row by row.

Both must have the same number of rows. A right column whose name the left already has gets
" (2)" after it, as Join Data names them.
"""

import pandas as pd
from _common import fail, get_run, read_table, start, write_table

MODULE = "Add Columns"
args, params = start(MODULE)
left, right = read_table(args.left_dataset), read_table(args.right_dataset)
if len(left) != len(right):
    fail(
        MODULE,
        "inputs_map['right_dataset']",
        f"the left dataset has {len(left)} rows and the right one {len(right)}: they must match",
    )
taken = set(left.columns)
renamed = {}
for column in right.columns:
    name = column
    while name in taken:
        name = f"{name} (2)"
    renamed[column] = name
    taken.add(name)
result = pd.concat([left, right.rename(columns=renamed)], axis=1)
write_table(result, args.combined_dataset)
get_run().log("Columns", len(result.columns))
