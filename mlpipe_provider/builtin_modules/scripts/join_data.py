"""Built-in module "Join Data": join two datasets on key columns (inner, outer or semi join)."""

from _common import check_columns, column_list, fail, get_run, read_table, start, write_table

MODULE = "Join Data"
args, params = start(MODULE)
left, right = read_table(args.left_dataset), read_table(args.right_dataset)
left_keys = column_list(params["left_keys"])
right_keys = column_list(params["right_keys"]) or left_keys
check_columns(MODULE, "params['left_keys']", left, left_keys)
check_columns(MODULE, "params['right_keys']", right, right_keys)
if len(left_keys) != len(right_keys):
    fail(MODULE, "params['right_keys']", f"{len(right_keys)} keys for {len(left_keys)} left keys")
join_type = params["join_type"]
if join_type == "Left Semi-Join":
    keys = right[right_keys].drop_duplicates().set_axis(left_keys, axis=1)
    result = left.merge(keys, on=left_keys, how="inner")
else:
    how = {"Inner Join": "inner", "Left Outer Join": "left", "Full Outer Join": "outer"}[join_type]
    result = left.merge(
        right, left_on=left_keys, right_on=right_keys, how=how, suffixes=("", " (2)")
    )
write_table(result, args.results_dataset)
get_run().log("Rows", len(result))
