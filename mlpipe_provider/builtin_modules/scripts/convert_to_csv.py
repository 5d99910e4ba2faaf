"""Built-in module "Convert to CSV": any table input as one CSV file, ``data.csv``.

Useful where a table arrives in another shape (a folder of CSV files, a designer
DataFrameDirectory) and one plain file is wanted, for download or for a step that reads a file.
"""

from _common import get_run, read_table, start, write_table

MODULE = "Convert to CSV"
args, params = start(MODULE)
frame = read_table(args.dataset)
write_table(frame, args.results_dataset)
get_run().log("Rows", len(frame))
