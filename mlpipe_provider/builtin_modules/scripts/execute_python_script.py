"""Built-in module "Execute Python Script": the designer's ``azureml_main`` contract.

The user's script (the ``python_script`` parameter, checked at compile time: it parses and
defines ``azureml_main``) runs in this step's Python process, never through a shell:
``azureml_main(dataframe1, dataframe2)`` gets the connected datasets as DataFrames (``None`` for
one not connected) and returns up to two DataFrames (a sequence, as the designer asks; a single
DataFrame is taken too). A script bundle (a zip file, or a folder) is unpacked into
``./Script Bundle``, which goes on ``sys.path`` as in the designer.
"""

import shutil
import sys
import types
import zipfile
from pathlib import Path

import pandas as pd
from _common import fail, get_run, read_table, start, write_table

MODULE = "Execute Python Script"
FIELD = "params['python_script']"
args, params = start(MODULE)


def unpack_bundle(source: str) -> Path:
    target = Path("Script Bundle").resolve()
    if target.exists():
        shutil.rmtree(target)
    path = Path(source)
    archives = [path] if path.is_file() else sorted(path.glob("*.zip"))
    if path.is_file() and not zipfile.is_zipfile(path):
        fail(MODULE, "inputs_map['script_bundle']", f"{source} is not a zip file")
    if archives:
        target.mkdir()
        for archive in archives:
            with zipfile.ZipFile(archive) as bundle:
                bundle.extractall(target)
    else:
        shutil.copytree(path, target)
    return target


if args.script_bundle:
    sys.path.insert(0, str(unpack_bundle(args.script_bundle)))
frames = [read_table(p) if p else None for p in (args.dataframe1, args.dataframe2)]
user = types.ModuleType("python_script")
exec(compile(params["python_script"], "python_script", "exec"), user.__dict__)  # noqa: S102 - the step's own script
result = user.azureml_main(*frames)
if isinstance(result, pd.DataFrame) or result is None:
    result = (result,)
if not isinstance(result, (tuple, list)) or len(result) > 2:
    fail(
        MODULE, FIELD, f"azureml_main must return up to two DataFrames, got {type(result).__name__}"
    )
outputs = [*result, None][:2]
for index, (frame, path) in enumerate(
    zip(outputs, (args.result_dataset1, args.result_dataset2), strict=True)
):
    if frame is not None and not isinstance(frame, pd.DataFrame):
        fail(
            MODULE,
            FIELD,
            f"azureml_main's result {index + 1} is a {type(frame).__name__}, not a DataFrame",
        )
    write_table(frame if frame is not None else pd.DataFrame(), path)
get_run().log("Result rows", len(outputs[0]) if outputs[0] is not None else 0)
