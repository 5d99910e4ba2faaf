"""v1's ``ParallelRunStep`` and ``ParallelRunConfig``: batch work over many files, in mini-batches.

The entry script has ``init()`` (called once per worker process) and ``run(mini_batch)`` (called
with a list of file paths, returning a list: one element per item it processed). The compiler
turns the step into an Airflow TaskGroup: a ``partition`` task cuts the input files into
mini-batches, one mapped ``mini_batch`` task per mini-batch runs them (Airflow dynamic task
mapping, retried by Airflow up to ``run_max_try``), and the step task gathers the results,
applies ``error_threshold`` / ``allowed_failed_count`` / ``allowed_failed_percent`` and writes
``parallel_run_step.txt`` (``append_row``). See docs/steps/parallel_run.md.

These classes only describe; every check that needs the workspace (the entry script exists, the
inputs are file datasets, the compute target is known) is the compiler's
(``compiler/kinds/parallel_run.py``), so a bad field is reported with the step's name.
"""

from __future__ import annotations

import re
from typing import Any

from mlpipe_provider.contract.parallel_run import (  # noqa: F401 - v1-facing names
    APPEND_ROW,
    DEFAULT_APPEND_ROW_FILE,
    DEFAULT_FILES_PER_MINI_BATCH,
    LOGGING_LEVELS,
    OUTPUT_ACTIONS,
    SUMMARY_ONLY,
    parse_mini_batch_size,
)
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk.steps import PipelineStep, _resolve_source_directory


def _is_parameter(value: Any) -> bool:
    from mlpipe_provider.sdk.data import PipelineParameter

    return isinstance(value, PipelineParameter)


class ParallelRunConfig:
    """How a ``ParallelRunStep`` runs its entry script (v1 ``ParallelRunConfig``).

    Parameters, names, order and defaults are v1's. ``mini_batch_size``, ``error_threshold``,
    ``allowed_failed_count``, ``allowed_failed_percent``, ``run_invocation_timeout``,
    ``run_max_try``, ``logging_level``, ``node_count`` and ``process_count_per_node`` may be
    ``PipelineParameter``s, as v1 allows; ``node_count`` and ``process_count_per_node`` then only
    bound concurrency at their defaults (Airflow fixes a task's concurrency when it parses the DAG).
    """

    def __init__(
        self,
        environment: Any,
        entry_script: str,
        error_threshold: int,
        output_action: str,
        compute_target: Any,
        node_count: int,
        process_count_per_node: int | None = None,
        mini_batch_size: Any = None,
        source_directory: str | None = None,
        description: str | None = None,
        logging_level: str = "INFO",
        run_invocation_timeout: int = 60,
        run_max_try: int = 3,
        append_row_file_name: str | None = None,
        allowed_failed_count: int | None = None,
        allowed_failed_percent: float | None = None,
        partition_keys: list | None = None,
        environment_variables: dict | None = None,
    ):
        if not isinstance(entry_script, str) or not entry_script:
            raise UserErrorException(
                f"ParallelRunConfig: entry_script must be a non-empty string, got {entry_script!r}"
            )
        if not _is_parameter(output_action) and output_action not in OUTPUT_ACTIONS:
            raise UserErrorException(
                f"ParallelRunConfig: output_action must be one of {', '.join(OUTPUT_ACTIONS)}, "
                f"got {output_action!r}"
            )
        if not _is_parameter(mini_batch_size) and mini_batch_size is not None:
            try:
                parse_mini_batch_size(mini_batch_size)
            except ValueError as exc:
                raise UserErrorException(f"ParallelRunConfig: mini_batch_size {exc}") from None
        if environment_variables is not None and not isinstance(environment_variables, dict):
            raise UserErrorException(
                "ParallelRunConfig: environment_variables must be a dict, got "
                f"{type(environment_variables).__name__}"
            )
        self.environment = environment
        self.entry_script = entry_script
        self.error_threshold = error_threshold
        self.output_action = output_action
        self.compute_target = compute_target
        self.node_count = node_count
        self.process_count_per_node = process_count_per_node
        self.mini_batch_size = mini_batch_size
        self.source_directory = source_directory
        self.description = description
        self.logging_level = logging_level
        self.run_invocation_timeout = run_invocation_timeout
        self.run_max_try = run_max_try
        self.append_row_file_name = append_row_file_name
        self.allowed_failed_count = allowed_failed_count
        self.allowed_failed_percent = allowed_failed_percent
        self.partition_keys = partition_keys
        self.environment_variables = dict(environment_variables or {})

    def __repr__(self) -> str:
        return (
            f"ParallelRunConfig(entry_script={self.entry_script!r}, "
            f"output_action={self.output_action!r}, node_count={self.node_count!r})"
        )


class ParallelRunStep(PipelineStep):
    """Run an entry script over the files of ``inputs`` in mini-batches (v1 ``ParallelRunStep``).

    ``inputs`` are the datasets to partition (each one cut into mini-batches separately, as in
    v1); ``side_inputs`` are data every mini-batch sees whole; ``output`` receives
    ``parallel_run_step.txt`` (``append_row``). Without ``output`` the step makes one, named
    ``<name>_output``, so later steps and ``StepRun.get_output_data`` find the results.
    """

    _step_kind = "parallel_run"

    def __init__(
        self,
        name: str,
        parallel_run_config: ParallelRunConfig,
        inputs: list,
        output: Any = None,
        side_inputs: list | None = None,
        arguments: list | None = None,
        allow_reuse: bool = True,
    ):
        from mlpipe_provider.sdk.data import PipelineData

        if not isinstance(parallel_run_config, ParallelRunConfig):
            raise UserErrorException(
                f"ParallelRunStep {name!r}: parallel_run_config must be a ParallelRunConfig, got "
                f"{type(parallel_run_config).__name__}"
            )
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise UserErrorException(
                f"ParallelRunStep {name!r}: inputs must be a non-empty list of datasets"
            )
        if not isinstance(allow_reuse, bool):
            raise UserErrorException(
                f"step {name!r}: allow_reuse must be True or False, got {allow_reuse!r}"
            )
        if output is None and isinstance(name, str) and name.strip():
            output = PipelineData(f"{re.sub(r'[^A-Za-z0-9_]', '_', name)}_output")
        side = list(side_inputs or [])
        super().__init__(name, [*inputs, *side], [output] if output is not None else [], arguments)
        self.parallel_run_config = parallel_run_config
        self.output = output
        self.side_inputs = side
        self._partitioned = len(inputs)
        self._allow_reuse = allow_reuse
        self._source_directory = _resolve_source_directory(
            parallel_run_config.source_directory, name
        )

    @property
    def source_directory(self) -> str | None:
        return self._source_directory

    @property
    def compute_target(self) -> Any:
        return self.parallel_run_config.compute_target

    # --- what the compiler reads (read-only; not v1 API) --------------------------------------
    @property
    def partitioned_input_count(self) -> int:
        """How many of ``inputs`` (the first ones) are partitioned; the rest are side inputs."""
        return self._partitioned
