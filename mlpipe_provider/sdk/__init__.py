"""The authoring SDK: Azure ML v1's names in one flat namespace.

Migrating a v1 program is changing ``from azureml.<anything> import X`` to
``from mlpipe_provider.sdk import X``. Names that mlpipe does not implement yet import fine and
raise ``NotSupportedError`` when used.
"""

from mlpipe_provider.errors import (
    ComputeTargetException,
    MlpipeError,
    NotSupportedError,
    PipelineValidationError,
    UserErrorException,
)
from mlpipe_provider.sdk.compute import (
    AmlCompute,
    AmlComputeProvisioningConfiguration,
    ComputeTarget,
    ComputeTargetProvisioningConfiguration,
)
from mlpipe_provider.sdk.data import (
    DataReference,
    InputPortBinding,
    PipelineData,
    PipelineParameter,
)
from mlpipe_provider.sdk.data_transfer import DataFactoryCompute, DataTransferStep
from mlpipe_provider.sdk.datastore import Datastore
from mlpipe_provider.sdk.environment import (
    CondaDependencies,
    DockerSection,
    Environment,
    MpiConfiguration,
    PyTorchConfiguration,
    RunConfiguration,
    TensorflowConfiguration,
)
from mlpipe_provider.sdk.estimator import (
    Estimator,
    EstimatorStep,
    Gloo,
    Mpi,
    MpiStep,
    Nccl,
    ParameterServer,
    PyTorch,
    SKLearn,
    TensorFlow,
)
from mlpipe_provider.sdk.experiment import Experiment, PipelineRun, StepRun
from mlpipe_provider.sdk.module import (
    InputPortDef,
    Module,
    ModuleVersion,
    ModuleVersionDescriptor,
    OutputPortDef,
)
from mlpipe_provider.sdk.module_step import ModuleStep
from mlpipe_provider.sdk.pipeline import Pipeline, StepSequence
from mlpipe_provider.sdk.run import Run
from mlpipe_provider.sdk.steps import PipelineStep, PythonScriptStep
from mlpipe_provider.sdk.unsupported import *  # noqa: F403 - the not-yet-supported v1 names
from mlpipe_provider.sdk.unsupported import UNSUPPORTED_NAMES
from mlpipe_provider.sdk.workspace import Workspace

AzureBlobDatastore = Datastore
AbstractDatastore = Datastore
DockerConfiguration = DockerSection
ActivityFailedException = MlpipeError
StepRunException = MlpipeError

SUPPORTED_NAMES = sorted(
    [
        "AbstractDatastore",
        "ActivityFailedException",
        "AmlCompute",
        "AmlComputeProvisioningConfiguration",
        "AzureBlobDatastore",
        "ComputeTarget",
        "ComputeTargetException",
        "ComputeTargetProvisioningConfiguration",
        "CondaDependencies",
        "DataFactoryCompute",
        "Estimator",
        "EstimatorStep",
        "Gloo",
        "Mpi",
        "MpiStep",
        "Nccl",
        "ParameterServer",
        "PyTorch",
        "PyTorchConfiguration",
        "SKLearn",
        "TensorFlow",
        "TensorflowConfiguration",
        "DataReference",
        "DataTransferStep",
        "Datastore",
        "DockerConfiguration",
        "Environment",
        "Experiment",
        "InputPortBinding",
        "InputPortDef",
        "MlpipeError",
        "Module",
        "ModuleStep",
        "ModuleVersion",
        "ModuleVersionDescriptor",
        "MpiConfiguration",
        "NotSupportedError",
        "OutputPortDef",
        "Pipeline",
        "PipelineData",
        "PipelineParameter",
        "PipelineRun",
        "PipelineStep",
        "PipelineValidationError",
        "PythonScriptStep",
        "Run",
        "RunConfiguration",
        "StepRun",
        "StepRunException",
        "StepSequence",
        "UserErrorException",
        "Workspace",
    ]
)
__all__ = SUPPORTED_NAMES + UNSUPPORTED_NAMES
