"""v1 names mlpipe knows but does not implement yet: using one raises a clear error.

Importing them works (so a migrated program gets past its imports), but constructing or calling
one says exactly what is missing instead of silently doing nothing.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.errors import NotSupportedError


def _unsupported(name: str, note: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise NotSupportedError(f"{name} is not supported by mlpipe yet ({note})")

    def _classmethod(*args: Any, **kwargs: Any) -> Any:
        raise NotSupportedError(f"{name} is not supported by mlpipe yet ({note})")

    namespace = {"__init__": __init__, "__doc__": f"Not supported yet: {note}."}
    for attr in (
        "create",
        "get",
        "list",
        "publish",
        "submit",
        "from_files",
        "from_delimited_files",
    ):
        namespace[attr] = staticmethod(_classmethod)
    return type(name, (), namespace)


ParallelRunStep = _unsupported("ParallelRunStep", "no Airflow mapping yet")
ParallelRunConfig = _unsupported("ParallelRunConfig", "no Airflow mapping yet")
HyperDriveStep = _unsupported("HyperDriveStep", "no Airflow mapping yet")
AutoMLStep = _unsupported("AutoMLStep", "AutoML is an Azure service")
DatabricksStep = _unsupported("DatabricksStep", "Databricks is an external service")
AdlaStep = _unsupported("AdlaStep", "Azure Data Lake Analytics is retired")
AzureBatchStep = _unsupported("AzureBatchStep", "Azure Batch is an external service")
CommandStep = _unsupported("CommandStep", "use PythonScriptStep")
KustoStep = _unsupported("KustoStep", "Kusto is an external service")
SynapseSparkStep = _unsupported("SynapseSparkStep", "Synapse is an external service")
PipelineDraft = _unsupported("PipelineDraft", "use Pipeline and Experiment.submit")
ScriptRunConfig = _unsupported(
    "ScriptRunConfig", "submit a Pipeline with a PythonScriptStep instead"
)
Model = _unsupported("Model", "model registration is not part of mlpipe")
InteractiveLoginAuthentication = _unsupported(
    "InteractiveLoginAuthentication", "a local workspace needs no login"
)
ServicePrincipalAuthentication = _unsupported(
    "ServicePrincipalAuthentication", "a local workspace needs no login"
)
MsiAuthentication = _unsupported("MsiAuthentication", "a local workspace needs no login")

UNSUPPORTED_NAMES = sorted(
    [
        "ParallelRunStep",
        "ParallelRunConfig",
        "HyperDriveStep",
        "AutoMLStep",
        "DatabricksStep",
        "AdlaStep",
        "AzureBatchStep",
        "CommandStep",
        "KustoStep",
        "SynapseSparkStep",
        "PipelineDraft",
        "ScriptRunConfig",
        "Model",
        "InteractiveLoginAuthentication",
        "ServicePrincipalAuthentication",
        "MsiAuthentication",
    ]
)
