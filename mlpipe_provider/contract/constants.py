"""Every name that crosses the compile/run seam, spelled once.

A generated DAG file, the compiler that writes it and the operators that run it must agree on
these strings byte for byte; a name retyped in two places drifts the day one of them changes.
The kinds are plain ``str`` constants grouped in a namespace, not an ``Enum``: a spec holding one
is written into a DAG file with ``repr``, which must stay the literal ``'data_reference'``.
"""

from __future__ import annotations

from typing import Any, Final


class InputKind:
    """Where a step input's data comes from (the ``kind`` of an entry of ``inputs=[...]``)."""

    #: a fixed place on a datastore (v1 ``DataReference`` / a fixed ``DataPath``)
    DATA_REFERENCE: Final = "data_reference"
    #: a ``PipelineParameter`` whose default is a ``DataPath``: each run says where
    DATA_PATH: Final = "data_path"
    #: another step's output (v1 ``PipelineData`` / ``OutputFileDatasetConfig``)
    PIPELINE_DATA: Final = "pipeline_data"
    #: a registered or parameterised dataset (v1 ``FileDataset`` / ``TabularDataset``)
    DATASET: Final = "dataset"
    #: the result of a SQL query (v1 ``SqlDataReference``), staged as CSV
    SQL: Final = "sql"

    ALL: Final = (DATA_REFERENCE, DATA_PATH, PIPELINE_DATA, DATASET, SQL)
    #: kinds whose data is at a datastore path known before the step runs
    ON_DATASTORE: Final = (DATA_REFERENCE, DATA_PATH)


class StepKind:
    """The step kinds the compiler lowers (``compiler/kinds/<kind>.py``)."""

    PYTHON_SCRIPT: Final = "python_script"
    ESTIMATOR: Final = "estimator"
    MPI: Final = "mpi"
    MODULE: Final = "module"
    COMMAND: Final = "command"
    DATA_TRANSFER: Final = "data_transfer"
    PARALLEL_RUN: Final = "parallel_run"


#: operators of tasks that belong to a step without being it (a ParallelRunStep's partition and
#: mapped mini-batch tasks, a HyperDriveStep's mapped trials): a run's status lists their step,
#: not them
COMPANION_OPERATORS: Final = frozenset(
    {"ParallelRunPartitionOperator", "ParallelRunMiniBatchOperator", "HyperDriveTrialOperator"}
)

#: DAG param: run every step even where a reusable result exists (v1 ``regenerate_outputs``)
REGENERATE_PARAM = "mlpipe_regenerate_outputs"
#: DAG param: keep running steps that do not depend on a failed one (v1 ``continue_on_step_failure``)
CONTINUE_PARAM = "mlpipe_continue_on_step_failure"

#: the task id of the pipeline-level reuse check at the root of every compiled DAG; a step may
#: not take it (``compiler/naming.py``)
PLAN_TASK_ID = "mlpipe.plan"

#: XCom key under which a step that runs (is not reused) leaves its fingerprint as it starts, so
#: a step that then fails or is killed can still be matched with the store's lease and entries
FINGERPRINT_XCOM = "mlpipe_fingerprint"

#: XCom key under which a failed step (or its sensor) leaves its error for the run's status
ERROR_XCOM = "mlpipe_error"

#: the run id of a pipeline run an endpoint schedule starts begins with this (``Schedule`` finds them)
ENDPOINT_RUN_ID_PREFIX = "mlpipe_endpoint_schedule"

#: record statuses that decide behaviour (a published pipeline, endpoint or schedule runs only when Active)
ACTIVE = "Active"
DISABLED = "Disabled"
DEPRECATED = "Deprecated"


def planned_record(plan_value: Any, step_task_id: str) -> dict[str, Any] | None:
    """The record the plan task found reused for step ``step_task_id``, read from the plan's
    return value (``{"reused": {task id: record}, "undecided": {task id: why}}``); None when the
    plan left the step to decide itself. One XCom for the whole plan: a push per step cost a
    round trip to the execution API each, most of a fully reused pipeline's time."""
    if not isinstance(plan_value, dict):
        return None
    found = (plan_value.get("reused") or {}).get(step_task_id)
    return found if isinstance(found, dict) else None
