"""Every name that crosses the compile/run seam, spelled once.

A generated DAG file, the compiler that writes it and the operators that run it must agree on
these strings byte for byte; a name retyped in two places drifts the day one of them changes.
``StrEnum`` members compare and hash equal to their plain-string values, so DAG files keep
their literal ``'data_reference'`` and the code compares against ``InputKind.DATA_REFERENCE``.
"""

from __future__ import annotations

from enum import StrEnum


class InputKind(StrEnum):
    """Where a step input's data comes from (the ``kind`` of an entry of ``inputs=[...]``)."""

    #: a fixed place on a datastore (v1 ``DataReference`` / a fixed ``DataPath``)
    DATA_REFERENCE = "data_reference"
    #: a ``PipelineParameter`` whose default is a ``DataPath``: each run says where
    DATA_PATH = "data_path"
    #: another step's output (v1 ``PipelineData`` / ``OutputFileDatasetConfig``)
    PIPELINE_DATA = "pipeline_data"
    #: a registered or parameterised dataset (v1 ``FileDataset`` / ``TabularDataset``)
    DATASET = "dataset"
    #: the result of a SQL query (v1 ``SqlDataReference``), staged as CSV
    SQL = "sql"


class StepKind(StrEnum):
    """The step kinds the compiler lowers (``compiler/kinds/<kind>.py``)."""

    PYTHON_SCRIPT = "python_script"
    ESTIMATOR = "estimator"
    MPI = "mpi"
    MODULE = "module"
    DATA_TRANSFER = "data_transfer"


#: DAG param: run every step even where a reusable result exists (v1 ``regenerate_outputs``)
REGENERATE_PARAM = "mlpipe_regenerate_outputs"
#: DAG param: keep running steps that do not depend on a failed one (v1 ``continue_on_step_failure``)
CONTINUE_PARAM = "mlpipe_continue_on_step_failure"

#: ends the task id of every step's reuse sensor; a step may not take such an id itself
REUSE_SUFFIX = ".reuse"

#: XCom key under which a failed step (or its sensor) leaves its error for the run's status
ERROR_XCOM = "mlpipe_error"

#: record statuses that decide behaviour (a published pipeline, endpoint or schedule runs only when Active)
ACTIVE = "Active"
DISABLED = "Disabled"
DEPRECATED = "Deprecated"


def reuse_task_id(step_task_id: str) -> str:
    """The task id of the reuse sensor that guards step ``step_task_id``."""
    return f"{step_task_id}{REUSE_SUFFIX}"
