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


AutoMLStep = _unsupported(
    "AutoMLStep",
    "AutoML is an Azure service; instead train in a PythonScriptStep with an AutoML library "
    "such as FLAML or auto-sklearn",
)
DatabricksStep = _unsupported(
    "DatabricksStep",
    "Databricks is an external service; instead call its Jobs API from a PythonScriptStep",
)
AdlaStep = _unsupported(
    "AdlaStep", "Azure Data Lake Analytics is retired; instead port the job to a PythonScriptStep"
)
AzureBatchStep = _unsupported(
    "AzureBatchStep",
    "Azure Batch is an external service; instead use a PythonScriptStep on a compute target "
    "with the docker or kubernetes backend",
)
KustoStep = _unsupported(
    "KustoStep", "Kusto is an external service; instead query it from a PythonScriptStep"
)
SynapseSparkStep = _unsupported(
    "SynapseSparkStep",
    "Synapse is an external service; instead run PySpark in a PythonScriptStep",
)

# Compute targets of external services: their steps are not supported either, so v1 notebooks
# that attach one get past their imports and stop at the attach with a pointer.
AdlaCompute = _unsupported(
    "AdlaCompute",
    "Azure Data Lake Analytics is retired; use a compute target from the workspace config",
)
BatchCompute = _unsupported(
    "BatchCompute",
    "use a compute target with the docker or kubernetes backend in the workspace config",
)
DatabricksCompute = _unsupported(
    "DatabricksCompute", "call Databricks' Jobs API from a PythonScriptStep instead"
)
KustoCompute = _unsupported("KustoCompute", "query Kusto from a PythonScriptStep instead")
# Libraries for DatabricksStep (azureml.core.databricks): unsupported with it.
_DATABRICKS = "DatabricksStep is not supported; call Databricks' Jobs API from a PythonScriptStep"
EggLibrary = _unsupported("EggLibrary", _DATABRICKS)
JarLibrary = _unsupported("JarLibrary", _DATABRICKS)
MavenLibrary = _unsupported("MavenLibrary", _DATABRICKS)
PyPiLibrary = _unsupported("PyPiLibrary", _DATABRICKS)
RCranLibrary = _unsupported("RCranLibrary", _DATABRICKS)
AutoMLConfig = _unsupported(
    "AutoMLConfig",
    "AutoML is an Azure service; train with FLAML or auto-sklearn in a PythonScriptStep",
)

UNSUPPORTED_NAMES = sorted(
    [
        "AutoMLStep",
        "DatabricksStep",
        "AdlaStep",
        "AzureBatchStep",
        "KustoStep",
        "SynapseSparkStep",
        "AdlaCompute",
        "BatchCompute",
        "DatabricksCompute",
        "KustoCompute",
        "AutoMLConfig",
        "EggLibrary",
        "JarLibrary",
        "MavenLibrary",
        "PyPiLibrary",
        "RCranLibrary",
    ]
)
