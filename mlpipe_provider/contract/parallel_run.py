"""``ParallelRunStep`` names and rules both sides need: the SDK and compiler check a
``mini_batch_size`` with the same function the run-time cuts mini-batches with."""

from __future__ import annotations

import re
from typing import Any, Final

#: v1's output actions
APPEND_ROW: Final = "append_row"
SUMMARY_ONLY: Final = "summary_only"
OUTPUT_ACTIONS: Final = (APPEND_ROW, SUMMARY_ONLY)
#: v1's default for a FileDataset input: ten files per ``run()`` call
DEFAULT_FILES_PER_MINI_BATCH: Final = 10
DEFAULT_APPEND_ROW_FILE: Final = "parallel_run_step.txt"
LOGGING_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]B?)?\s*$", re.IGNORECASE)


def parse_mini_batch_size(value: Any) -> tuple[str, int]:
    """``("files", n)`` for a count, ``("bytes", n)`` for a size such as ``"1MB"``.

    v1 reads a FileDataset's mini_batch_size as a number of files; a size with a unit (``KB``,
    ``MB``, ``GB``, v1's form for a TabularDataset) cuts file mini-batches by total size instead.
    """
    if isinstance(value, bool):
        raise ValueError(f"must be a number of files or a size such as '1MB', got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"must be positive, got {value!r}")
        return "files", value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            number, unit = int(match.group(1)), (match.group(2) or "").upper().rstrip("B")
            if number <= 0:
                raise ValueError(f"must be positive, got {value!r}")
            if not unit:
                return "files", number
            return "bytes", number * {"K": 1024, "M": 1024**2, "G": 1024**3}[unit]
    raise ValueError(f"must be a number of files or a size such as '1MB', got {value!r}")
