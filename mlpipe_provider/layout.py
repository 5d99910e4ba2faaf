"""Where a step run's files live in a datastore.

Each execution of a step gets a fresh folder named after its step run id, as in v1
(``azureml/<step run id>/<output name>``), so a retry or a concurrent run never writes where
another attempt's outputs are, and nothing is overwritten in place. mlpipe's own files for the
attempt (metrics, images, the run record) sit beside the outputs under ``.mlpipe``, a name no
output can take.
"""

from __future__ import annotations

import posixpath

RUNS_PREFIX = "azureml"
META_DIR = ".mlpipe"


def attempt_root(step_run_id: str) -> str:
    return posixpath.join(RUNS_PREFIX, step_run_id)


def output_path(step_run_id: str, output_name: str) -> str:
    return posixpath.join(attempt_root(step_run_id), output_name)


def meta_path(step_run_id: str, name: str) -> str:
    return posixpath.join(attempt_root(step_run_id), META_DIR, name)
