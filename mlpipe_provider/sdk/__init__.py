"""The authoring SDK: Azure ML v1's names in one flat namespace.

Migrating a v1 program is changing ``from azureml.<anything> import X`` to
``from mlpipe_provider.sdk import X``. Names that mlpipe does not implement yet import fine and
raise ``NotSupportedError`` when used.

Names are loaded on first use (PEP 562), so a step script's ``from mlpipe_provider.sdk import Run``
imports only the run context and the standard library: it works in a container image that has
none of the compiler's dependencies, and it keeps every step's start-up fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlpipe_provider.sdk.unsupported import *  # noqa: F403 - the not-yet-supported v1 names
from mlpipe_provider.sdk.unsupported import UNSUPPORTED_NAMES

# name -> (module, attribute); v1 aliases point at the class they stand for
_LAZY: dict[str, tuple[str, str]] = {
    "AbstractDataset": ("mlpipe_provider.sdk.dataset", "AbstractDataset"),
    "AbstractDatastore": ("mlpipe_provider.sdk.datastore", "Datastore"),
    "ActivityFailedException": ("mlpipe_provider.errors", "ActivityFailedException"),
    "AmlCompute": ("mlpipe_provider.sdk.compute", "AmlCompute"),
    "AmlComputeProvisioningConfiguration": (
        "mlpipe_provider.sdk.compute",
        "AmlComputeProvisioningConfiguration",
    ),
    "AzureBlobDatastore": ("mlpipe_provider.sdk.datastore", "Datastore"),
    "AzureDataLakeGen2Datastore": ("mlpipe_provider.sdk.datastore", "Datastore"),
    "AzureMySqlDatastore": ("mlpipe_provider.sdk.datastore", "Datastore"),
    "AzurePostgreSqlDatastore": ("mlpipe_provider.sdk.datastore", "Datastore"),
    "AzureSqlDatabaseDatastore": ("mlpipe_provider.sdk.datastore", "Datastore"),
    "BanditPolicy": ("mlpipe_provider.sdk.hyperdrive_policy", "BanditPolicy"),
    "BayesianParameterSampling": (
        "mlpipe_provider.sdk.hyperdrive_space",
        "BayesianParameterSampling",
    ),
    "CommandStep": ("mlpipe_provider.sdk.command_step", "CommandStep"),
    "ComputeTarget": ("mlpipe_provider.sdk.compute", "ComputeTarget"),
    "ComputeTargetException": ("mlpipe_provider.errors", "ComputeTargetException"),
    "ComputeTargetProvisioningConfiguration": (
        "mlpipe_provider.sdk.compute",
        "ComputeTargetProvisioningConfiguration",
    ),
    "CondaDependencies": ("mlpipe_provider.sdk.environment", "CondaDependencies"),
    "DEFAULT_CPU_IMAGE": ("mlpipe_provider.sdk.constants", "DEFAULT_CPU_IMAGE"),
    "DEFAULT_GPU_IMAGE": ("mlpipe_provider.sdk.constants", "DEFAULT_GPU_IMAGE"),
    "DataFactoryCompute": ("mlpipe_provider.sdk.data_transfer", "DataFactoryCompute"),
    "DataPath": ("mlpipe_provider.sdk.datapath", "DataPath"),
    "DataPathComputeBinding": ("mlpipe_provider.sdk.datapath", "DataPathComputeBinding"),
    "DataReference": ("mlpipe_provider.sdk.data", "DataReference"),
    "DataTransferStep": ("mlpipe_provider.sdk.data_transfer", "DataTransferStep"),
    "DataType": ("mlpipe_provider.sdk.dataset", "DataType"),
    "Dataset": ("mlpipe_provider.sdk.dataset", "Dataset"),
    "DatasetConsumptionConfig": ("mlpipe_provider.sdk.dataset", "DatasetConsumptionConfig"),
    "Datastore": ("mlpipe_provider.sdk.datastore", "Datastore"),
    "DockerConfiguration": ("mlpipe_provider.sdk.environment", "DockerSection"),
    "DockerSection": ("mlpipe_provider.sdk.environment", "DockerSection"),
    "EarlyTerminationPolicy": ("mlpipe_provider.sdk.hyperdrive_policy", "EarlyTerminationPolicy"),
    "EntryScript": ("mlpipe_provider.sdk.entry_script", "EntryScript"),
    "Environment": ("mlpipe_provider.sdk.environment", "Environment"),
    "Estimator": ("mlpipe_provider.sdk.estimator", "Estimator"),
    "EstimatorStep": ("mlpipe_provider.sdk.estimator", "EstimatorStep"),
    "Experiment": ("mlpipe_provider.sdk.experiment", "Experiment"),
    "FileDataset": ("mlpipe_provider.sdk.dataset", "FileDataset"),
    "FileDatasetFactory": ("mlpipe_provider.sdk.dataset", "FileDatasetFactory"),
    "Gloo": ("mlpipe_provider.sdk.estimator", "Gloo"),
    "GridParameterSampling": ("mlpipe_provider.sdk.hyperdrive_space", "GridParameterSampling"),
    "HyperDriveConfig": ("mlpipe_provider.sdk.hyperdrive", "HyperDriveConfig"),
    "HyperDriveStep": ("mlpipe_provider.sdk.hyperdrive_step", "HyperDriveStep"),
    "HyperDriveStepRun": ("mlpipe_provider.sdk.hyperdrive_run", "HyperDriveStepRun"),
    "HyperParameterSampling": ("mlpipe_provider.sdk.hyperdrive_space", "HyperParameterSampling"),
    "InputPortBinding": ("mlpipe_provider.sdk.data", "InputPortBinding"),
    "InputPortDef": ("mlpipe_provider.sdk.module", "InputPortDef"),
    "MPI_CPU_IMAGE": ("mlpipe_provider.sdk.constants", "MPI_CPU_IMAGE"),
    "MPI_GPU_IMAGE": ("mlpipe_provider.sdk.constants", "MPI_GPU_IMAGE"),
    "MedianStoppingPolicy": ("mlpipe_provider.sdk.hyperdrive_policy", "MedianStoppingPolicy"),
    "MlpipeError": ("mlpipe_provider.errors", "MlpipeError"),
    "Model": ("mlpipe_provider.sdk.model", "Model"),
    "Module": ("mlpipe_provider.sdk.module", "Module"),
    "ModuleStep": ("mlpipe_provider.sdk.module_step", "ModuleStep"),
    "ModuleVersion": ("mlpipe_provider.sdk.module", "ModuleVersion"),
    "ModuleVersionDescriptor": ("mlpipe_provider.sdk.module", "ModuleVersionDescriptor"),
    "Mpi": ("mlpipe_provider.sdk.estimator", "Mpi"),
    "MpiConfiguration": ("mlpipe_provider.sdk.environment", "MpiConfiguration"),
    "MpiStep": ("mlpipe_provider.sdk.estimator", "MpiStep"),
    "Nccl": ("mlpipe_provider.sdk.estimator", "Nccl"),
    "NoTerminationPolicy": ("mlpipe_provider.sdk.hyperdrive_policy", "NoTerminationPolicy"),
    "NotSupportedError": ("mlpipe_provider.errors", "NotSupportedError"),
    "OutputDatasetConfig": ("mlpipe_provider.sdk.output_dataset", "OutputDatasetConfig"),
    "OutputFileDatasetConfig": ("mlpipe_provider.sdk.output_dataset", "OutputFileDatasetConfig"),
    "OutputPortDef": ("mlpipe_provider.sdk.module", "OutputPortDef"),
    "OutputTabularDatasetConfig": (
        "mlpipe_provider.sdk.output_dataset",
        "OutputTabularDatasetConfig",
    ),
    "ParameterServer": ("mlpipe_provider.sdk.estimator", "ParameterServer"),
    "ParallelRunConfig": ("mlpipe_provider.sdk.parallel_run", "ParallelRunConfig"),
    "ParallelRunStep": ("mlpipe_provider.sdk.parallel_run", "ParallelRunStep"),
    "Pipeline": ("mlpipe_provider.sdk.pipeline", "Pipeline"),
    "PipelineDraft": ("mlpipe_provider.sdk.pipeline_draft", "PipelineDraft"),
    "PipelineData": ("mlpipe_provider.sdk.data", "PipelineData"),
    "PipelineEndpoint": ("mlpipe_provider.sdk.published", "PipelineEndpoint"),
    "PipelineIdVersion": ("mlpipe_provider.sdk.published", "PipelineIdVersion"),
    "PipelineParameter": ("mlpipe_provider.sdk.data", "PipelineParameter"),
    "PipelineRun": ("mlpipe_provider.sdk.experiment", "PipelineRun"),
    "PipelineStep": ("mlpipe_provider.sdk.steps", "PipelineStep"),
    "PipelineValidationError": ("mlpipe_provider.errors", "PipelineValidationError"),
    "PrimaryMetricGoal": ("mlpipe_provider.sdk.hyperdrive", "PrimaryMetricGoal"),
    "PromoteHeadersBehavior": ("mlpipe_provider.sdk.dataset", "PromoteHeadersBehavior"),
    "PublishedPipeline": ("mlpipe_provider.sdk.published", "PublishedPipeline"),
    "PyTorch": ("mlpipe_provider.sdk.estimator", "PyTorch"),
    "PyTorchConfiguration": ("mlpipe_provider.sdk.environment", "PyTorchConfiguration"),
    "PythonScriptStep": ("mlpipe_provider.sdk.steps", "PythonScriptStep"),
    "RandomParameterSampling": ("mlpipe_provider.sdk.hyperdrive_space", "RandomParameterSampling"),
    "Run": ("mlpipe_provider.sdk.run", "Run"),
    "RunConfiguration": ("mlpipe_provider.sdk.environment", "RunConfiguration"),
    "RunDetails": ("mlpipe_provider.sdk.widgets", "RunDetails"),
    "SKLearn": ("mlpipe_provider.sdk.estimator", "SKLearn"),
    "Schedule": ("mlpipe_provider.sdk.schedule", "Schedule"),
    "ScheduleRecurrence": ("mlpipe_provider.sdk.schedule", "ScheduleRecurrence"),
    "ScriptRun": ("mlpipe_provider.sdk.experiment", "ScriptRun"),
    "ScriptRunConfig": ("mlpipe_provider.sdk.script_run_config", "ScriptRunConfig"),
    "SqlDataReference": ("mlpipe_provider.sdk.sql_data", "SqlDataReference"),
    "StepRun": ("mlpipe_provider.sdk.experiment", "StepRun"),
    "StepRunException": ("mlpipe_provider.errors", "MlpipeError"),
    "StepRunOutput": ("mlpipe_provider.sdk.experiment", "StepRunOutput"),
    "StepSequence": ("mlpipe_provider.sdk.pipeline", "StepSequence"),
    "StoredProcedureParameter": ("mlpipe_provider.sdk.sql_data", "StoredProcedureParameter"),
    "StoredProcedureParameterType": (
        "mlpipe_provider.sdk.sql_data",
        "StoredProcedureParameterType",
    ),
    "TabularDataset": ("mlpipe_provider.sdk.dataset", "TabularDataset"),
    "TabularDatasetFactory": ("mlpipe_provider.sdk.dataset", "TabularDatasetFactory"),
    "TensorFlow": ("mlpipe_provider.sdk.estimator", "TensorFlow"),
    "TensorflowConfiguration": ("mlpipe_provider.sdk.environment", "TensorflowConfiguration"),
    "TimeZone": ("mlpipe_provider.sdk.timezones", "TimeZone"),
    "TrainingOutput": ("mlpipe_provider.sdk.hyperdrive_step", "TrainingOutput"),
    "TruncationSelectionPolicy": (
        "mlpipe_provider.sdk.hyperdrive_policy",
        "TruncationSelectionPolicy",
    ),
    "UserErrorException": ("mlpipe_provider.errors", "UserErrorException"),
    "VERSION": ("mlpipe_provider.sdk.constants", "VERSION"),
    "Workspace": ("mlpipe_provider.sdk.workspace", "Workspace"),
    "choice": ("mlpipe_provider.sdk.hyperdrive_space", "choice"),
    "lognormal": ("mlpipe_provider.sdk.hyperdrive_space", "lognormal"),
    "loguniform": ("mlpipe_provider.sdk.hyperdrive_space", "loguniform"),
    "normal": ("mlpipe_provider.sdk.hyperdrive_space", "normal"),
    "qlognormal": ("mlpipe_provider.sdk.hyperdrive_space", "qlognormal"),
    "qloguniform": ("mlpipe_provider.sdk.hyperdrive_space", "qloguniform"),
    "qnormal": ("mlpipe_provider.sdk.hyperdrive_space", "qnormal"),
    "quniform": ("mlpipe_provider.sdk.hyperdrive_space", "quniform"),
    "randint": ("mlpipe_provider.sdk.hyperdrive_space", "randint"),
    "uniform": ("mlpipe_provider.sdk.hyperdrive_space", "uniform"),
    "AbstractAuthentication": ("mlpipe_provider.sdk.authentication", "AbstractAuthentication"),
    "AzureCliAuthentication": ("mlpipe_provider.sdk.authentication", "AzureCliAuthentication"),
    "InteractiveLoginAuthentication": (
        "mlpipe_provider.sdk.authentication",
        "InteractiveLoginAuthentication",
    ),
    "MsiAuthentication": ("mlpipe_provider.sdk.authentication", "MsiAuthentication"),
    "ServicePrincipalAuthentication": (
        "mlpipe_provider.sdk.authentication",
        "ServicePrincipalAuthentication",
    ),
    # mlpipe's own: the built-in module library (not a v1 name)
    "install_builtin_modules": (
        "mlpipe_provider.sdk.builtin_modules",
        "install_builtin_modules",
    ),
}

SUPPORTED_NAMES = sorted(_LAZY)
__all__ = SUPPORTED_NAMES + UNSUPPORTED_NAMES


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'mlpipe_provider.sdk' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
