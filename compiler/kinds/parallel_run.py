"""``ParallelRunStep``: a TaskGroup of partition -> mapped mini-batches -> the step that gathers.

The step's own task (``ParallelRunStepOperator``, on the shared step base) holds every setting and
is what the reuse plan, lineage and the run's status know as the step. Two companion tasks run
before it in its group and read their settings from it (``step_task_id``), so the DAG file states
each setting once:

- ``partition`` lists the files of the partitioned inputs and cuts them into mini-batches;
- ``mini_batch`` is mapped over that list (Airflow dynamic task mapping, ``.expand``): one task
  instance per mini-batch, retried by Airflow up to ``run_max_try`` times, at most
  ``node_count * process_count_per_node`` at once (a pool slot each on a GPU target).

Values a v1 program may give as ``PipelineParameter`` are lowered to ``{"param": name}`` and read
at run time; the few Airflow fixes when it parses the DAG (retries, concurrency) use the
parameter's default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compiler.kinds import CompanionTask, StepKind, register
from compiler.kinds.script import lower_script
from mlpipe_provider.contract.constants import InputKind

CONFIG = "parallel_run_config"
#: the child ids of the group's tasks; the step's own task is the kind's name
PARTITION_TASK = "partition"
MINI_BATCH_TASK = "mini_batch"
#: seconds Airflow waits before it retries a failed mini-batch
RETRY_DELAY_S = 1.0


def _value(lowering: Any, step: Any, field: str, value: Any) -> tuple[Any, Any]:
    """``(lowered, default)``: a PipelineParameter becomes ``{"param": name}`` (registered as a
    DAG param) and its default; anything else is itself twice."""
    from mlpipe_provider.sdk.data import PipelineParameter

    if isinstance(value, PipelineParameter):
        lowering._register_parameter(step, field, value)
        return {"param": value.name}, value.default_value
    return value, value


def _check_int(
    lowering: Any, step: Any, field: str, value: Any, low: int, *, optional: bool = False
) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        lowering.problem(step, field, f"must be an integer >= {low}, got {value!r}")


def _lower_config(lowering: Any, step: Any, spec: dict[str, Any]) -> dict[str, Any]:
    from mlpipe_provider.contract.parallel_run import (
        DEFAULT_APPEND_ROW_FILE,
        DEFAULT_FILES_PER_MINI_BATCH,
        LOGGING_LEVELS,
        parse_mini_batch_size,
    )

    config = step.parallel_run_config
    lowered: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for key in (
        "mini_batch_size",
        "error_threshold",
        "allowed_failed_count",
        "allowed_failed_percent",
        "run_invocation_timeout",
        "run_max_try",
        "logging_level",
        "node_count",
        "process_count_per_node",
    ):
        lowered[key], defaults[key] = _value(
            lowering, step, f"{CONFIG}.{key}", getattr(config, key)
        )
    if defaults["mini_batch_size"] is None:
        lowered["mini_batch_size"] = defaults["mini_batch_size"] = DEFAULT_FILES_PER_MINI_BATCH
    try:
        parse_mini_batch_size(defaults["mini_batch_size"])
    except ValueError as exc:
        lowering.problem(step, f"{CONFIG}.mini_batch_size", str(exc))
    _check_int(lowering, step, f"{CONFIG}.error_threshold", defaults["error_threshold"], -1)
    _check_int(
        lowering,
        step,
        f"{CONFIG}.allowed_failed_count",
        defaults["allowed_failed_count"],
        -1,
        optional=True,
    )
    percent = defaults["allowed_failed_percent"]
    if percent is not None and (
        not isinstance(percent, (int, float))
        or isinstance(percent, bool)
        or not 0 <= percent <= 100
    ):
        lowering.problem(
            step, f"{CONFIG}.allowed_failed_percent", f"must be between 0 and 100, got {percent!r}"
        )
    _check_int(
        lowering, step, f"{CONFIG}.run_invocation_timeout", defaults["run_invocation_timeout"], 1
    )
    _check_int(lowering, step, f"{CONFIG}.run_max_try", defaults["run_max_try"], 1)
    _check_int(lowering, step, f"{CONFIG}.node_count", defaults["node_count"], 1)
    _check_int(
        lowering,
        step,
        f"{CONFIG}.process_count_per_node",
        defaults["process_count_per_node"],
        1,
        optional=True,
    )
    if str(defaults["logging_level"]).upper() not in LOGGING_LEVELS:
        lowering.problem(
            step,
            f"{CONFIG}.logging_level",
            f"must be one of {', '.join(LOGGING_LEVELS)}, got {defaults['logging_level']!r}",
        )
    if config.partition_keys:
        lowering.problem(
            step,
            f"{CONFIG}.partition_keys",
            "partition_keys partitions a TabularDataset by column values; mlpipe's "
            "ParallelRunStep partitions FileDataset inputs only (docs/steps/parallel_run.md)",
        )
    append_row_file = config.append_row_file_name
    if append_row_file is not None and (
        not isinstance(append_row_file, str)
        or not append_row_file
        or "/" in append_row_file
        or append_row_file in (".", "..")
    ):
        lowering.problem(
            step,
            f"{CONFIG}.append_row_file_name",
            f"must be a plain file name, got {append_row_file!r}",
        )
    variables = {}
    for key, value in sorted(config.environment_variables.items()):
        if not isinstance(key, str) or not key or "=" in key or not isinstance(value, str):
            lowering.problem(
                step, f"{CONFIG}.environment_variables", f"invalid variable {key!r}={value!r}"
            )
        else:
            variables[key] = value
    lowered.update(
        {
            "entry_script": config.entry_script,
            "output_action": config.output_action,
            "append_row_file_name": append_row_file or DEFAULT_APPEND_ROW_FILE,
            "environment_variables": variables,
        }
    )
    spec["parallel_defaults"] = defaults  # read by the companion tasks' kwargs, never rendered
    return lowered


def _partitioned(lowering: Any, step: Any, spec: dict[str, Any]) -> list[str]:
    """The names of the inputs cut into mini-batches: FileDatasets (named, mounted or downloaded)."""
    count = step.partitioned_input_count
    names = []
    for index, entry in enumerate(spec["inputs"][:count]):
        field = f"inputs[{index}]"
        if entry.get("dataset_type") == "tabular":
            lowering.problem(
                step,
                field,
                f"input {entry['name']!r} is a TabularDataset: mlpipe's ParallelRunStep "
                "partitions FileDatasets only (a TabularDataset needs pandas, which step workers "
                "do not have); pass a FileDataset of its files and read them in run()",
            )
        elif entry["kind"] == InputKind.SQL:
            lowering.problem(step, field, "a SQL query cannot be cut into mini-batches")
        names.append(entry["name"])
    return names


def _lower(lowering: Any, step: Any, spec: dict[str, Any]) -> None:
    config = step.parallel_run_config
    lower_script(
        lowering,
        step,
        spec,
        source_directory=step.source_directory,
        script_name=config.entry_script,
        script_field=f"{CONFIG}.entry_script",
        source_field=f"{CONFIG}.source_directory",
    )
    # spec["script_name"] (the entry script) stays for the DAG's doc table
    spec["parallel"] = _lower_config(lowering, step, spec)
    spec["parallel"]["partitioned_inputs"] = _partitioned(lowering, step, spec)
    spec["environment"] = lowering.lower_environment(step, config)
    if spec["compute"].get("backend", "local") != "local":
        lowering.problem(
            step,
            f"{CONFIG}.compute_target",
            f"compute target {spec['compute']['name']!r} uses the "
            f"{spec['compute']['backend']!r} backend; ParallelRunStep runs its mini-batches on "
            "the local backend only so far (docs/steps/parallel_run.md)",
        )
    for index, argument in enumerate(spec["arguments"]):
        if isinstance(argument, dict) and "output" in argument:
            lowering.problem(
                step,
                f"arguments[{index}]",
                "the step's output is written by the step itself (parallel_run_step.txt and "
                "what run() writes to EntryScript().output_dir); it cannot be an argument",
            )


def parallel_kwargs(spec: dict[str, Any], dag_dir: Path) -> list[tuple[str, Any]]:
    from compiler.codegen import relative_path

    kwargs: list[tuple[str, Any]] = [
        ("source_directory", relative_path(spec["source_directory"], dag_dir)),
        ("arguments", spec["arguments"]),
        ("parallel", spec["parallel"]),
        ("inputs", spec["inputs"]),
        ("outputs", spec["outputs"]),
        ("compute", spec["compute"]),
    ]
    if spec.get("environment"):
        kwargs.append(("environment", spec["environment"]))
    kwargs.append(("allow_reuse", spec["allow_reuse"]))
    return kwargs


def concurrency(spec: dict[str, Any]) -> int:
    """How many mini-batches may run at once: v1's node_count * process_count_per_node, where
    process_count_per_node defaults (as in v1) to the node's GPUs, else its cores."""
    defaults = spec["parallel_defaults"]
    compute = spec["compute"]
    per_node = defaults.get("process_count_per_node")
    if not isinstance(per_node, int) or per_node < 1:
        per_node = int(compute.get("gpus") or 0) or int(compute.get("cpus") or 0) or 1
    nodes = defaults.get("node_count")
    nodes = nodes if isinstance(nodes, int) and nodes >= 1 else 1
    return nodes * per_node


def companion_tasks(
    spec: dict[str, Any], step_task_id: str, pools: dict[str, Any], dag_dir: Path | None = None
) -> list[CompanionTask]:
    """The partition task and the mapped mini-batch task that run before the step's own task."""
    defaults = spec["parallel_defaults"]
    tries = defaults.get("run_max_try")
    tries = tries if isinstance(tries, int) and tries >= 1 else 3
    mini_batch: list[tuple[str, Any]] = [
        ("task_id", MINI_BATCH_TASK),
        ("step_task_id", step_task_id),
        ("retries", tries - 1),
        ("retry_delay", RETRY_DELAY_S),
        ("max_active_tis_per_dagrun", concurrency(spec)),
    ]
    compute = spec["compute"]
    if compute["name"] in pools:  # one GPU per mini-batch process
        mini_batch += [("pool", compute["name"]), ("pool_slots", 1), ("queue", compute["name"])]
    return [
        CompanionTask(
            PARTITION_TASK,
            "mlpipe_provider.operators.parallel_run",
            "ParallelRunPartitionOperator",
            [("task_id", PARTITION_TASK), ("step_task_id", step_task_id)],
        ),
        CompanionTask(
            MINI_BATCH_TASK,
            "mlpipe_provider.operators.parallel_run",
            "ParallelRunMiniBatchOperator",
            mini_batch,
            expand=("mini_batch", PARTITION_TASK),
        ),
    ]


register(
    StepKind(
        "parallel_run",
        "mlpipe_provider.operators.parallel_run",
        "ParallelRunStepOperator",
        _lower,
        parallel_kwargs,
        group=True,
        companions=companion_tasks,
    )
)
