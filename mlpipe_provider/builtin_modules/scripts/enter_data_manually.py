"""Built-in module "Enter Data Manually": a small table typed into the ``data`` parameter.

CSV or TSV; without a header row the columns are named Col1, Col2, ... as in the designer.
Empty trailing lines are dropped.
"""

import io

import pandas as pd
from _common import fail, get_run, start, write_table

MODULE = "Enter Data Manually"
args, params = start(MODULE)
text = params["data"].rstrip("\n\r ") + "\n"
separator = "\t" if params["data_format"] == "TSV" else ","
try:
    frame = pd.read_csv(
        io.StringIO(text), sep=separator, header=0 if params["has_header"] else None
    )
except (ValueError, pd.errors.ParserError) as exc:
    fail(MODULE, "params['data']", f"is not {params['data_format']}: {exc}")
if not params["has_header"]:
    frame.columns = [f"Col{i}" for i in range(1, len(frame.columns) + 1)]
write_table(frame, args.dataset)
get_run().log("Rows", len(frame))
