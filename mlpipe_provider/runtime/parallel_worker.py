"""One mini-batch of a ``ParallelRunStep``: ``python -m mlpipe_provider.runtime.parallel_worker REQUEST``.

Started by the mini-batch task (``runtime/parallel_run.py``) with the step's Python, from the
step's source folder, without a shell. It loads the entry script as v1 does (``sys.argv`` holds
the step's arguments, so ``init()`` may parse them), calls ``init()`` once, then
``run(mini_batch)`` with the list of file paths under ``run_invocation_timeout``, and writes what
``run()`` returned as ``result.json``: one row per element (``append_row`` writes them), and how
many elements there were (each counts as one item processed, as in v1). A failure exits non-zero
with the traceback on stderr, which the task's log shows.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

#: what ``EntryScript`` (``sdk/entry_script.py``) reads: this mini-batch's folders and log level
OUTPUT_DIR_ENV = "MLPIPE_PARALLEL_OUTPUT_DIR"
WORKING_DIR_ENV = "MLPIPE_PARALLEL_WORKING_DIR"
LOG_DIR_ENV = "MLPIPE_PARALLEL_LOG_DIR"
LOGGING_LEVEL_ENV = "MLPIPE_PARALLEL_LOGGING_LEVEL"


class RunTimeout(Exception):
    """run() took longer than run_invocation_timeout."""


def _rows(result: Any) -> list[str]:
    """v1's rows for ``append_row``: a list's elements, or a DataFrame's rows space-separated."""
    if hasattr(result, "itertuples"):  # a pandas DataFrame, if the environment has pandas
        return [" ".join(str(v) for v in row) for row in result.itertuples(index=False)]
    if isinstance(result, (list, tuple)):
        return [str(item) for item in result]
    raise TypeError(
        f"run() must return a list (one element per item processed) or a DataFrame, got "
        f"{type(result).__name__}"
    )


def _load(entry_script: Path) -> Any:
    spec = importlib.util.spec_from_file_location(entry_script.stem, entry_script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load entry script {str(entry_script)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[entry_script.stem] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise AttributeError(f"entry script {entry_script.name!r} has no run(mini_batch) function")
    return module


def _on_alarm(signum: int, frame: Any) -> None:
    raise RunTimeout("run() did not return within run_invocation_timeout")


def main(request_file: str) -> int:
    request = json.loads(Path(request_file).read_text(encoding="utf-8"))
    entry_script = Path(request["entry_script"])
    sys.path.insert(0, str(entry_script.parent))
    sys.argv = [str(entry_script), *request["arguments"]]
    module = _load(entry_script)
    if callable(getattr(module, "init", None)):
        module.init()
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(request["timeout_s"]))
    try:
        result = module.run(list(request["files"]))
    finally:
        signal.alarm(0)
    if callable(getattr(module, "shutdown", None)):  # v1 calls it when a worker stops
        module.shutdown()
    rows = _rows(result)
    out = Path(request["result"])
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({"rows": rows, "count": len(rows)}), encoding="utf-8")
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
