"""Built-in module "Export Data": write a dataset as one file (CSV or JSON lines) in its output."""

import os

from _common import fail, get_run, read_table, start

MODULE = "Export Data"
args, params = start(MODULE)
frame = read_table(args.dataset)
name = params["file_name"]
if os.path.basename(name) != name or name in (".", ".."):
    fail(MODULE, "params['file_name']", f"{name!r} must be a plain file name, not a path")
os.makedirs(args.exported_data, exist_ok=True)
target = os.path.join(args.exported_data, name)
if params["file_format"] == "csv":
    frame.to_csv(target, index=False, lineterminator="\n")
else:
    frame.to_json(target, orient="records", lines=True)
get_run().log("Exported rows", len(frame))
