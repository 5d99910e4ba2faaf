"""Built-in module "Select Columns in Dataset": keep the named columns, in the order named."""

from _common import check_columns, column_list, get_run, read_table, start, write_table

MODULE = "Select Columns in Dataset"
args, params = start(MODULE)
frame = read_table(args.dataset)
columns = column_list(params["columns"]) or list(frame.columns)
check_columns(MODULE, "params['columns']", frame, columns)
write_table(frame[columns], args.results_dataset)
get_run().log("Columns", len(columns))
