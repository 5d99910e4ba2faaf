"""The compile/run contract: what the compiler writes into a DAG file and the operators read back.

This is the lowest layer of mlpipe. It imports nothing from ``mlpipe_provider.sdk``, ``compiler``,
the client or the CLI, and no Airflow, so a step container, the compiler and the operators can all
import it and agree on one spelling of every name that crosses the compile/run seam.
``constants`` holds the names; ``specs`` the typed shapes of a step's inputs, outputs, compute and
environment.
"""

from mlpipe_provider.contract.constants import (
    ACTIVE,
    CONTINUE_PARAM,
    DEPRECATED,
    DISABLED,
    ERROR_XCOM,
    FINGERPRINT_XCOM,
    PLAN_TASK_ID,
    REGENERATE_PARAM,
    InputKind,
    StepKind,
    planned_record,
)
from mlpipe_provider.contract.specs import (
    ComputeSpec,
    ContractError,
    EnvironmentSpec,
    InputSpec,
    OutputSpec,
    StepSpec,
    validate_step_kwargs,
)

__all__ = [
    "ACTIVE",
    "CONTINUE_PARAM",
    "DEPRECATED",
    "DISABLED",
    "ERROR_XCOM",
    "FINGERPRINT_XCOM",
    "REGENERATE_PARAM",
    "PLAN_TASK_ID",
    "ComputeSpec",
    "ContractError",
    "EnvironmentSpec",
    "InputKind",
    "InputSpec",
    "OutputSpec",
    "StepKind",
    "StepSpec",
    "planned_record",
    "validate_step_kwargs",
]
