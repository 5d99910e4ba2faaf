"""Estimators (v1's ``azureml.train``): a training script plus its environment and distribution.

v1 deprecated them in favour of ScriptRunConfig but many pipelines still use ``EstimatorStep``;
mlpipe keeps the names and parameters and logs v1's deprecation notice. An estimator compiles to
the same kind of process as a ``PythonScriptStep``, with its packages as the step's environment.
"""

from __future__ import annotations

import logging
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk.environment import CondaDependencies, Environment
from mlpipe_provider.sdk.steps import PipelineStep, _resolve_source_directory

module_logger = logging.getLogger("azureml.train.estimator")
step_logger = logging.getLogger("azureml.pipeline.steps")


class Mpi:
    """v1's ``azureml.train.dnn.Mpi`` distributed backend."""

    def __init__(self, process_count_per_node: int = 1):
        self.process_count_per_node = process_count_per_node


class Gloo:
    """v1's PyTorch Gloo backend: one process per node."""


class Nccl:
    """v1's PyTorch NCCL backend: one process per node."""


class ParameterServer:
    """v1's TensorFlow parameter server backend."""

    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1):
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count


class Estimator:
    """A training script with its packages, image and distribution (v1 ``Estimator``)."""

    _framework = "Python"
    _deprecation = (
        "'Estimator' is deprecated. Please use 'ScriptRunConfig' from 'azureml.core.script_run_config' "
        "with your own defined environment or an Azure ML curated environment."
    )

    def __init__(
        self,
        source_directory: str,
        *,
        compute_target: Any = None,
        vm_size: str | None = None,
        vm_priority: str | None = None,
        entry_script: str | None = None,
        script_params: dict | None = None,
        node_count: Any = 1,
        process_count_per_node: Any = 1,
        distributed_backend: str | None = None,
        distributed_training: Any = None,
        use_gpu: bool = False,
        use_docker: bool = True,
        custom_docker_base_image: str | None = None,
        custom_docker_image: str | None = None,
        image_registry_details: Any = None,
        user_managed: bool = False,
        conda_packages: list | None = None,
        pip_packages: list | None = None,
        conda_dependencies_file_path: str | None = None,
        pip_requirements_file_path: str | None = None,
        conda_dependencies_file: str | None = None,
        pip_requirements_file: str | None = None,
        environment_variables: dict | None = None,
        environment_definition: Environment | None = None,
        inputs: list | None = None,
        source_directory_data_store: Any = None,
        shm_size: str | None = None,
        resume_from: Any = None,
        max_run_duration_seconds: int | None = None,
        framework_version: str | None = None,
        **kwargs: Any,
    ):
        module_logger.warning(self._deprecation)
        if not isinstance(entry_script, str) or not entry_script:
            raise UserErrorException(
                f"{type(self).__name__}: entry_script must be a non-empty string"
            )
        if script_params is not None and not isinstance(script_params, dict):
            raise UserErrorException(f"{type(self).__name__}: script_params must be a dict")
        self.source_directory = _resolve_source_directory(source_directory, entry_script)
        self.compute_target = compute_target
        self.entry_script = entry_script
        self.script_params = dict(script_params or {})
        self.node_count = node_count
        self.process_count_per_node = process_count_per_node
        self.distributed_backend = distributed_backend
        self.distributed_training = distributed_training
        self.use_gpu = use_gpu
        self.use_docker = use_docker
        self.custom_docker_image = custom_docker_image or custom_docker_base_image
        self.inputs = list(inputs or [])
        self.max_run_duration_seconds = max_run_duration_seconds
        self.framework_version = framework_version
        self.shm_size = shm_size
        if environment_definition is not None:
            self.environment = environment_definition
        else:
            self.environment = self._build_environment(
                conda_packages,
                pip_packages,
                conda_dependencies_file_path or conda_dependencies_file,
                pip_requirements_file_path or pip_requirements_file,
                environment_variables,
                user_managed,
            )

    def _build_environment(
        self,
        conda_packages: list | None,
        pip_packages: list | None,
        conda_file: str | None,
        pip_file: str | None,
        variables: dict | None,
        user_managed: bool,
    ) -> Environment:
        if pip_file:
            env = Environment.from_pip_requirements(f"{type(self).__name__}-env", pip_file)
        elif conda_file:
            env = Environment.from_conda_specification(f"{type(self).__name__}-env", conda_file)
        else:
            env = Environment(f"{type(self).__name__}-env")
            env.python.conda_dependencies = CondaDependencies.create(
                pip_packages=list(pip_packages or []), conda_packages=list(conda_packages or [])
            )
        if pip_file or conda_file:
            for package in pip_packages or []:
                env.python.conda_dependencies.add_pip_package(package)
            for package in conda_packages or []:
                env.python.conda_dependencies.add_conda_package(package)
        deps = env.python.conda_dependencies
        env.python.user_managed_dependencies = user_managed or not (
            deps.pip_packages or deps.conda_packages
        )
        if self.custom_docker_image:
            env.docker.enabled = True
            env.docker.base_image = self.custom_docker_image
        env.environment_variables = {str(k): str(v) for k, v in (variables or {}).items()}
        return env

    @property
    def run_config(self) -> Any:
        return self

    def distribution(self) -> dict[str, Any]:
        """The launch shape, as (framework, node_count, processes per node, TF counts)."""
        training = self.distributed_training
        framework = "none"
        ppn = self.process_count_per_node
        workers = ps = None
        if isinstance(training, Mpi) or self.distributed_backend == "mpi":
            framework = "mpi"
            ppn = training.process_count_per_node if isinstance(training, Mpi) else ppn
        elif isinstance(training, (Gloo, Nccl)):
            framework = "pytorch"
        elif isinstance(training, ParameterServer) or self.distributed_backend == "ps":
            framework = "tensorflow"
            workers = getattr(training, "worker_count", 1)
            ps = getattr(training, "parameter_server_count", 1)
        elif training is not None:
            from mlpipe_provider.sdk.environment import MpiConfiguration, PyTorchConfiguration

            if isinstance(training, MpiConfiguration):
                framework, ppn = "mpi", training.process_count_per_node
            elif isinstance(training, PyTorchConfiguration):
                framework = "pytorch"
            else:
                raise UserErrorException(
                    f"unsupported distributed_training {type(training).__name__}"
                )
        return {
            "framework": framework,
            "node_count": self.node_count,
            "process_count_per_node": ppn,
            "worker_count": workers,
            "parameter_server_count": ps,
        }


class PyTorch(Estimator):
    _framework = "PyTorch"
    _deprecation = (
        "'PyTorch' estimator is deprecated. Please use 'ScriptRunConfig' from "
        "'azureml.core.script_run_config' with your own defined environment or one of the Azure ML "
        "curated environments."
    )


class TensorFlow(Estimator):
    _framework = "TensorFlow"
    _deprecation = (
        "'TensorFlow' estimator is deprecated. Please use 'ScriptRunConfig' from "
        "'azureml.core.script_run_config' with your own defined environment or one of the Azure ML "
        "curated environments."
    )


class SKLearn(Estimator):
    _framework = "SKLearn"
    _deprecation = (
        "'SKLearn' estimator is deprecated. Please use 'ScriptRunConfig' from "
        "'azureml.core.script_run_config' with your own defined environment or one of the Azure ML "
        "curated environments."
    )


class EstimatorStep(PipelineStep):
    """Run an estimator as a pipeline step (v1 ``EstimatorStep``)."""

    _step_kind = "estimator"
    # v1's reference marks the step "DEPRECATED. Use the CommandStep instead."; the notice is
    # logged once per step, worded like v1's estimator notices, so a migrated program's output
    # reads as it did on Azure.
    _step_deprecation = "'EstimatorStep' is deprecated. Please use 'CommandStep' instead."

    def __init__(
        self,
        name: str | None = None,
        estimator: Estimator | None = None,
        estimator_entry_script_arguments: list | None = None,
        runconfig_pipeline_params: dict | None = None,
        inputs: list | None = None,
        outputs: list | None = None,
        compute_target: Any = None,
        allow_reuse: bool = True,
        version: str | None = None,
    ):
        if not isinstance(estimator, Estimator):
            raise UserErrorException(
                f"EstimatorStep {name!r}: estimator must be an Estimator, got {type(estimator).__name__}"
            )
        step_logger.warning(self._step_deprecation)
        flattened: list[Any] = []
        for key, value in estimator.script_params.items():
            flattened += [key, value]
        arguments = [*flattened, *(estimator_entry_script_arguments or [])]
        super().__init__(
            name or estimator.entry_script, [*(inputs or []), *estimator.inputs], outputs, arguments
        )
        if not isinstance(allow_reuse, bool):
            raise UserErrorException(
                f"step {self.name!r}: allow_reuse must be True or False, got {allow_reuse!r}"
            )
        self.estimator = estimator
        self.compute_target = (
            compute_target if compute_target is not None else estimator.compute_target
        )
        self.runconfig_pipeline_params = dict(runconfig_pipeline_params or {})
        self._allow_reuse = allow_reuse
        self.version = version
        self._source_directory = estimator.source_directory


class MpiStep(EstimatorStep):
    """An MPI job as a step (v1 ``MpiStep``): ``node_count`` x ``process_count_per_node`` processes.

    Both counts may be ``PipelineParameter``s, resolved when the run starts.
    """

    _step_kind = "mpi"
    _step_deprecation = "'MpiStep' is deprecated. Please use 'CommandStep' instead."

    def __init__(
        self,
        name: str | None = None,
        source_directory: str | None = None,
        script_name: str | None = None,
        arguments: list | None = None,
        compute_target: Any = None,
        node_count: Any = None,
        process_count_per_node: Any = None,
        inputs: list | None = None,
        outputs: list | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        hash_paths: list | None = None,
        **kwargs: Any,
    ):
        for required, value in (
            ("source_directory", source_directory),
            ("script_name", script_name),
        ):
            if value is None:
                raise UserErrorException(f"MpiStep {name!r}: {required} is required")
        known = {
            "use_gpu",
            "use_docker",
            "custom_docker_image",
            "custom_docker_base_image",
            "pip_packages",
            "conda_packages",
            "environment_variables",
            "pip_requirements_file_path",
            "conda_dependencies_file_path",
            "user_managed",
            "environment_definition",
            "max_run_duration_seconds",
            "shm_size",
        }
        unknown = sorted(set(kwargs) - known - {"runconfig"})
        if unknown:
            raise UserErrorException(f"MpiStep {name!r}: unexpected arguments {', '.join(unknown)}")
        runconfig = kwargs.pop("runconfig", None)
        if runconfig is not None:
            # v1 notebooks pass the RunConfiguration they built for the other steps; the MPI
            # step's own package and image keywords still say what it installs.
            env = getattr(runconfig, "environment", None)
            if env is None or not hasattr(env, "to_spec"):
                raise UserErrorException(
                    f"MpiStep {name!r}: runconfig must be a RunConfiguration, got "
                    f"{type(runconfig).__name__}"
                )
            own_environment = {
                "pip_packages",
                "conda_packages",
                "environment_definition",
                "custom_docker_image",
                "custom_docker_base_image",
                "pip_requirements_file_path",
                "conda_dependencies_file_path",
            }
            if not own_environment & set(kwargs):
                kwargs["environment_definition"] = env
        logging.disable(logging.WARNING)  # the estimator's deprecation notice is not MpiStep's
        try:
            estimator = Estimator(
                source_directory,
                compute_target=compute_target,
                entry_script=script_name,
                node_count=1 if node_count is None else node_count,
                process_count_per_node=1
                if process_count_per_node is None
                else process_count_per_node,
                distributed_training=Mpi(
                    1 if process_count_per_node is None else process_count_per_node
                ),
                **kwargs,
            )
        finally:
            logging.disable(logging.NOTSET)
        super().__init__(
            name or script_name,
            estimator,
            list(arguments or []),
            inputs=inputs,
            outputs=outputs,
            compute_target=compute_target,
            allow_reuse=allow_reuse,
            version=version,
        )
