"""Built-in module "Remove Duplicate Rows": keep one row per distinct key.

Rows are duplicates when every key column is equal; as in the designer, a row with a missing
key value is never a duplicate, so it is kept.
"""

import pandas as pd
from _common import check_columns, column_list, get_run, read_table, start, write_table

MODULE = "Remove Duplicate Rows"
args, params = start(MODULE)
frame = read_table(args.dataset)
keys = column_list(params["key_columns"]) or list(frame.columns)
check_columns(MODULE, "params['key_columns']", frame, keys)
keep = "first" if params["retain_first_duplicate_row"] else "last"
complete = frame[keys].notna().all(axis=1)
duplicate = pd.Series(False, index=frame.index)
# rows with a missing key take no part in finding duplicates
duplicate[complete] = frame.loc[complete, keys].duplicated(keep=keep)
result = frame[~duplicate]
write_table(result, args.results_dataset)
get_run().log("Removed rows", int(duplicate.sum()))
