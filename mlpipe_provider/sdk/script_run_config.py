"""v1's ``ScriptRunConfig``: a script or a command, its folder, compute, environment and launch shape.

After 2021 v1's samples configure every training job this way: submitted on its own
(``Experiment.submit(src)``, a one-step run here) or handed to a ``CommandStep`` as its
``runconfig``. Like v1, it keeps a ``RunConfiguration`` (``src.run_config``) that carries the
target, environment, time limit and distributed job config, so a program that passes
``src.run_config`` to a ``PythonScriptStep`` gets the same settings there too.
"""

from __future__ import annotations

import shlex
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk.environment import (
    Environment,
    MpiConfiguration,
    PyTorchConfiguration,
    RunConfiguration,
    TensorflowConfiguration,
)
from mlpipe_provider.sdk.steps import _resolve_source_directory

#: the distributed job configs v1 accepts in ``distributed_job_config``
DISTRIBUTED_CONFIGS = (MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration)


class ScriptRunConfig:
    """What to run (``script`` + ``arguments``, or ``command``), where, and with which software."""

    #: v1's default time limit: 30 days
    MAX_DURATION_SECONDS_DEFAULT = 2592000

    def __init__(
        self,
        source_directory: str,
        script: str | None = None,
        arguments: list | str | None = None,
        run_config: RunConfiguration | None = None,
        _telemetry_values: Any = None,
        compute_target: Any = None,
        environment: Environment | None = None,
        distributed_job_config: Any = None,
        resume_from: Any = None,
        max_run_duration_seconds: int | None = MAX_DURATION_SECONDS_DEFAULT,
        command: list | str | None = None,
        docker_runtime_config: Any = None,
    ):
        if command is not None and (script is not None or arguments):
            # v1 refuses the mix too: a command already says what runs and with which arguments
            raise UserErrorException(
                "ScriptRunConfig: give either command, or script (with arguments), not both"
            )
        if command is not None and not isinstance(command, (str, list, tuple)):
            raise UserErrorException(
                f"ScriptRunConfig: command must be a string or a list, got {type(command).__name__}"
            )
        if script is not None and (not isinstance(script, str) or not script):
            raise UserErrorException(
                f"ScriptRunConfig: script must be a non-empty string, got {script!r}"
            )
        if distributed_job_config is not None and not isinstance(
            distributed_job_config, DISTRIBUTED_CONFIGS
        ):
            raise UserErrorException(
                "ScriptRunConfig: distributed_job_config must be an MpiConfiguration, "
                f"PyTorchConfiguration or TensorflowConfiguration, got "
                f"{type(distributed_job_config).__name__}"
            )
        if environment is not None and not isinstance(environment, Environment):
            raise UserErrorException(
                f"ScriptRunConfig: environment must be an Environment, got {type(environment).__name__}"
            )
        if isinstance(arguments, str):  # v1 takes one string too: its words are the arguments
            arguments = shlex.split(arguments)
        if arguments is not None and not isinstance(arguments, (list, tuple)):
            raise UserErrorException(
                f"ScriptRunConfig: arguments must be a list or a string, got {type(arguments).__name__}"
            )
        self.source_directory = _resolve_source_directory(source_directory, script or "command")
        self.script = script
        self.arguments = list(arguments or [])
        self.command = list(command) if isinstance(command, tuple) else command
        self.resume_from = resume_from
        self.docker_runtime_config = docker_runtime_config
        self.run_config = run_config if run_config is not None else RunConfiguration()
        rc = self.run_config
        rc.script = script
        rc.arguments = list(self.arguments)
        rc.command = self.command
        if compute_target is not None:
            rc.target = compute_target
        if environment is not None:
            rc.environment = environment
            rc.docker = environment.docker
        if distributed_job_config is not None:
            rc.distributed_job_config = distributed_job_config
            rc.node_count = getattr(distributed_job_config, "node_count", 1)
        if max_run_duration_seconds is not None:
            rc.max_run_duration_seconds = max_run_duration_seconds
        if docker_runtime_config is not None:
            rc.docker_runtime_config = docker_runtime_config

    # v1 reads these through the run configuration; they stay in step with it
    @property
    def compute_target(self) -> Any:
        return self.run_config.target

    @property
    def environment(self) -> Environment:
        return self.run_config.environment

    @property
    def distributed_job_config(self) -> Any:
        return self.run_config.distributed_job_config

    @property
    def max_run_duration_seconds(self) -> int | None:
        return self.run_config.max_run_duration_seconds

    def __repr__(self) -> str:
        what = (
            f"command={self.command!r}" if self.command is not None else f"script={self.script!r}"
        )
        return f"ScriptRunConfig(source_directory={self.source_directory!r}, {what})"
