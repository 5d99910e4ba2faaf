"""v1's ``EntryScript`` (``from azureml_user.parallel_run import EntryScript``), for entry scripts.

A ``ParallelRunStep`` entry script uses it for a logger and for folders: ``output_dir`` (files
written there become part of the step's output, next to ``parallel_run_step.txt``),
``working_dir`` (scratch space of this mini-batch) and ``log_dir``. The mini-batch worker
(``mlpipe_provider/runtime/parallel_worker.py``) sets them per mini-batch through environment
variables, so this module needs nothing but the standard library.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from mlpipe_provider.runtime.parallel_worker import (
    LOG_DIR_ENV,
    LOGGING_LEVEL_ENV,
    OUTPUT_DIR_ENV,
    WORKING_DIR_ENV,
)

LOGGER_NAME = "ParallelRunStep"


def _folder(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise RuntimeError(
            f"EntryScript: ${variable} is not set; EntryScript works inside a ParallelRunStep "
            "entry script run by mlpipe"
        )
    Path(value).mkdir(parents=True, exist_ok=True)
    return value


class EntryScript:
    """What an entry script asks about the run it is part of (v1 ``EntryScript``)."""

    @property
    def logger(self) -> logging.Logger:
        return self.get_logger()

    def get_logger(self) -> logging.Logger:
        """A logger whose lines go to the mini-batch task's log (stderr), at ``logging_level``."""
        logger = logging.getLogger(LOGGER_NAME)
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(os.environ.get(LOGGING_LEVEL_ENV, "INFO"))
            logger.propagate = False
        return logger

    @property
    def output_dir(self) -> str:
        """Files written here are kept with this mini-batch's result and merged into the step's
        output folder (the same name from two mini-batches: the later mini-batch's file)."""
        return _folder(OUTPUT_DIR_ENV)

    @property
    def working_dir(self) -> str:
        return _folder(WORKING_DIR_ENV)

    @property
    def log_dir(self) -> str:
        return _folder(LOG_DIR_ENV)
