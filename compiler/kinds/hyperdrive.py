"""``HyperDriveStep``: a sweep compiled to a TaskGroup of mapped trials and the step that picks.

In the DAG file the step is a TaskGroup named after it: ``trials``, one
``HyperDriveTrialOperator`` mapped over the trials (each runs the script with its values as
``--name value``, is reused like a step, and may be stopped early by the policy), then
``hyperdrive``, the ``HyperDriveStepOperator`` that ranks the trials by the primary metric and
writes the step's outputs. ``max_concurrent_runs`` becomes the mapped task's
``max_active_tis_per_dagrun``; a GPU target's pool bounds the trials as it bounds any step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compiler.kinds import CompanionTask, StepKind, register
from compiler.kinds.distributed import check_capacity, lower_distribution
from compiler.kinds.hyperdrive_trials import definition_seed, plan_trials
from compiler.kinds.script import lower_script, lower_timeout, process_kwargs, runconfig_shape
from mlpipe_provider.runtime.hyperdrive_step import TRIALS_CHILD_ID

#: the trials' own output: the folder a v1 training script writes as ``./outputs``
TRIAL_OUTPUT = "outputs"


def _sweep(lowering: Any, step: Any) -> dict[str, Any]:
    config = step.hyperdrive_config
    sampling = config.hyperparameter_sampling
    space = sampling.parameter_space
    properties = sampling.properties
    trials = plan_trials(sampling.method, space, config.max_total_runs, properties)
    if sampling.method == "bayesian" and config.max_concurrent_runs is None:
        lowering.warning(
            step,
            "hyperdrive_config.max_concurrent_runs",
            "BayesianParameterSampling with every trial at once learns nothing from earlier "
            "trials; v1 recommends a small max_concurrent_runs",
        )
    return {
        "primary_metric_name": config.primary_metric_name,
        "primary_metric_goal": config.primary_metric_goal.value,
        "max_total_runs": config.max_total_runs,
        "max_concurrent_runs": config.max_concurrent_runs,
        "max_duration_minutes": config.max_duration_minutes,
        "policy": config.policy.to_spec(),
        "sampling": {
            "method": sampling.method,
            "parameter_space": space,
            "seed": definition_seed(space, properties),
        },
        "trials": trials,
    }


def _lower(lowering: Any, step: Any, spec: dict[str, Any]) -> None:
    lower_script(
        lowering,
        step,
        spec,
        source_directory=step.source_directory,
        script_name=step.script_name,
        script_field="hyperdrive_config.run_config.script",
        source_field="hyperdrive_config.run_config.source_directory",
    )
    for index, argument in enumerate(spec["arguments"]):
        if isinstance(argument, dict) and "output" in argument:
            lowering.problem(
                step,
                f"arguments[{index}]",
                f"output {argument['output']!r} is written by the HyperDriveStep from the best "
                "trial (TrainingOutput), not passed to the trials' script",
            )
    spec["environment"] = lowering.lower_environment(step, step.runconfig)
    spec["timeout_seconds"] = lower_timeout(lowering, step, step.runconfig)
    spec["distribution"] = lower_distribution(
        lowering, step, runconfig_shape(step.runconfig), {}, "runconfig."
    )
    check_capacity(lowering, step, spec, use_gpu=False)
    training = step.training_outputs()
    for output in spec["outputs"]:
        output["training"] = training.get(output["name"], {"type": "Outputs", "model_file": None})
    spec["hyperdrive"] = _sweep(lowering, step)
    spec["trial_datastore"] = lowering.default_datastore
    if not spec["hyperdrive"]["trials"]:
        lowering.problem(step, "hyperdrive_config.max_total_runs", "the sweep has no trials")


def _trial_output(spec: dict[str, Any]) -> dict[str, Any]:
    """Each trial's ``./outputs``: a fresh folder per trial run, where its script runs."""
    return {
        "name": TRIAL_OUTPUT,
        "output_name": TRIAL_OUTPUT,
        "datastore": spec["trial_datastore"],
        "mode": "mount",
        "path_on_compute": TRIAL_OUTPUT,
        "is_directory": True,
    }


def _sweep_settings(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec["hyperdrive"].items() if k != "trials"}


def trials_tasks(
    spec: dict[str, Any], step_task_id: str, pools: dict[str, Any], dag_dir: Path
) -> list[CompanionTask]:
    """The trials: one ``HyperDriveTrialOperator`` mapped over the trial list (literals)."""
    sweep = spec["hyperdrive"]
    what = [("script_name", spec["script_name"]), ("arguments", spec["arguments"])]
    kwargs: list[tuple[str, Any]] = [
        ("task_id", TRIALS_CHILD_ID),
        ("task_display_name", f"{spec['step_name']} {TRIALS_CHILD_ID}"),
        ("step_name", spec["step_name"]),
        ("workspace", None),
        *process_kwargs({**spec, "outputs": [_trial_output(spec)]}, dag_dir, what),
        ("sweep", _sweep_settings(spec)),
    ]
    if sweep["max_concurrent_runs"] is not None:
        kwargs.append(("max_active_tis_per_dagrun", sweep["max_concurrent_runs"]))
    compute = spec["compute"]
    if compute["name"] in pools:  # each trial holds the GPUs its processes use, as a step does
        from compiler.codegen import _pool_slots

        kwargs += [
            ("pool", compute["name"]),
            ("pool_slots", _pool_slots(spec)),
            ("queue", compute["name"]),
        ]
    return [
        CompanionTask(
            TRIALS_CHILD_ID,
            "mlpipe_provider.operators.hyperdrive",
            "HyperDriveTrialOperator",
            kwargs,
            expand_values=("trial", sweep["trials"]),
        )
    ]


def hyperdrive_kwargs(spec: dict[str, Any], dag_dir: Path) -> list[tuple[str, Any]]:
    return [
        ("outputs", spec["outputs"]),
        ("compute", spec["compute"]),
        ("sweep", _sweep_settings(spec)),
        ("trial_count", len(spec["hyperdrive"]["trials"])),
        ("allow_reuse", spec["allow_reuse"]),
    ]


register(
    StepKind(
        "hyperdrive",
        "mlpipe_provider.operators.hyperdrive",
        "HyperDriveStepOperator",
        _lower,
        hyperdrive_kwargs,
        group=True,
        companions=trials_tasks,
    )
)
