"""v1's ``HyperDriveStep`` and ``TrainingOutput``: a hyperparameter sweep as one pipeline step.

The trials run the config's script with each trial's values appended to its arguments as
``--name value`` (v1's way). The step's outputs are what a next step consumes: a
``PipelineData(..., training_output=TrainingOutput("Model", model_file=...))`` gets the best
trial's model, ``TrainingOutput("Metrics")`` (or ``metrics_output``) gets every trial's metrics as
v1's JSON; a ``PipelineData`` without a training output gets the best trial's whole ``outputs``
folder.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk.steps import PipelineStep

TRAINING_OUTPUT_TYPES = ("Model", "Metrics")


class TrainingOutput:
    """Which training result a ``PipelineData`` of a ``HyperDriveStep`` carries."""

    def __init__(
        self, type: str, model_file: str | None = None, pipeline_output_name: str | None = None
    ):
        if type not in TRAINING_OUTPUT_TYPES:
            raise UserErrorException(
                f"TrainingOutput: type must be 'Model' or 'Metrics', got {type!r}"
            )
        if model_file is not None and (type != "Model" or not isinstance(model_file, str)):
            raise UserErrorException(
                "TrainingOutput: model_file (a path in the best trial's run, such as "
                "'outputs/model.pkl') is only for type='Model'"
            )
        self.type = type
        self.model_file = model_file
        self.pipeline_output_name = pipeline_output_name

    def __repr__(self) -> str:
        return f"TrainingOutput(type={self.type!r}, model_file={self.model_file!r})"


class HyperDriveStep(PipelineStep):
    """Run a ``HyperDriveConfig``'s trials, then publish the best one's results (v1 ``HyperDriveStep``)."""

    _step_kind = "hyperdrive"

    def __init__(
        self,
        name: str,
        hyperdrive_config: Any,
        estimator_entry_script_arguments: list | None = None,
        inputs: list | None = None,
        outputs: list | None = None,
        metrics_output: Any = None,
        allow_reuse: bool = True,
        version: str | None = None,
    ):
        from mlpipe_provider.sdk.hyperdrive import HyperDriveConfig

        if not isinstance(hyperdrive_config, HyperDriveConfig):
            raise UserErrorException(
                f"HyperDriveStep {name!r}: hyperdrive_config must be a HyperDriveConfig, got "
                f"{type(hyperdrive_config).__name__}"
            )
        if estimator_entry_script_arguments is not None and not isinstance(
            estimator_entry_script_arguments, (list, tuple)
        ):
            raise UserErrorException(
                f"HyperDriveStep {name!r}: estimator_entry_script_arguments must be a list"
            )
        config = hyperdrive_config
        if config.run_config is not None:
            base = list(config.run_config.arguments)
            extra_inputs: list[Any] = []
        else:
            base = [part for k, v in config.estimator.script_params.items() for part in (k, v)]
            extra_inputs = list(config.estimator.inputs)
        arguments = [*base, *(estimator_entry_script_arguments or [])]
        all_outputs = list(outputs or [])
        if metrics_output is not None and not any(o is metrics_output for o in all_outputs):
            all_outputs.append(metrics_output)
        super().__init__(name, [*(inputs or []), *extra_inputs], all_outputs, arguments)
        if not isinstance(allow_reuse, bool):
            raise UserErrorException(
                f"step {self.name!r}: allow_reuse must be True or False, got {allow_reuse!r}"
            )
        self.hyperdrive_config = config
        self.metrics_output = metrics_output
        self.estimator_entry_script_arguments = list(estimator_entry_script_arguments or [])
        self._allow_reuse = allow_reuse
        self.version = version
        self._source_directory = config.source_directory
        self.params: dict[str, Any] = {}
        if config.run_config is not None:
            self.runconfig = config.run_config.run_config
            self.compute_target = config.run_config.compute_target
        else:
            estimator = config.estimator
            self.runconfig = SimpleNamespace(
                environment=estimator.environment,
                max_run_duration_seconds=estimator.max_run_duration_seconds,
            )
            self.compute_target = estimator.compute_target
        self.runconfig_pipeline_params: dict[str, Any] = {}

    @property
    def source_directory(self) -> str | None:
        return self._source_directory

    @property
    def script_name(self) -> str:
        return self.hyperdrive_config.script

    # --- what the compiler reads (read-only; not v1 API) --------------------------------------
    def training_outputs(self) -> dict[str, dict[str, Any]]:
        """Output name -> what it carries: ``{"type": "Model"|"Metrics"|"Outputs", "model_file"}``."""
        found: dict[str, dict[str, Any]] = {}
        for out in self.outputs:
            training = getattr(out, "_training_output", None)
            name = getattr(out, "name", None)
            if name is None:
                continue
            if out is self.metrics_output and training is None:
                found[name] = {"type": "Metrics", "model_file": None}
            elif isinstance(training, TrainingOutput):
                found[name] = {"type": training.type, "model_file": training.model_file}
            else:
                found[name] = {"type": "Outputs", "model_file": None}
        return found
