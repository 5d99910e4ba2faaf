"""The operators of ``HyperDriveStep``: one mapped trial operator, and the step that ranks them.

``HyperDriveTrialOperator`` is a ``PythonScriptStepOperator`` mapped over the sweep's trials
(``.partial(...).expand(trial=[...])``): each trial is a script run with its values appended to
the arguments, reused like any step when its values and inputs are unchanged. The step operator
that follows ranks them and writes the step's outputs. The work is in ``runtime/hyperdrive_*``.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.operators.base import MlpipeStepOperator
from mlpipe_provider.operators.script import PythonScriptStepOperator


class HyperDriveTrialOperator(PythonScriptStepOperator):
    """One trial: ``python SCRIPT ARGS --name value ...``, watched by the early termination policy."""

    ui_color = "#f3e6d4"

    def __init__(
        self,
        *,
        step_name: str,
        trial: dict[str, Any],
        sweep: dict[str, Any],
        arguments: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        index = int(trial["index"])
        super().__init__(step_name=f"{step_name}_{index}", arguments=arguments, **kwargs)
        self.sweep_name = step_name
        self.trial_index = index
        self.sweep = dict(sweep)
        self.script_arguments = list(arguments or [])
        self.hyperparameters: dict[str, Any] | None = trial.get("hyperparameters")
        if self.hyperparameters is not None:
            from mlpipe_provider.runtime.hyperdrive_trial import trial_arguments

            self.arguments = trial_arguments(self.script_arguments, self.hyperparameters)

    def fingerprint_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        """The script's settings with the trial's values, and what can stop it early."""
        settings = super().fingerprint_settings(params)
        settings["hyperdrive"] = {
            key: self.sweep[key] for key in ("primary_metric_name", "primary_metric_goal", "policy")
        }
        return settings

    def _run_step(self, context: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.hyperdrive_trial import propose_if_needed

        propose_if_needed(self, context)
        return super()._run_step(context)

    def produce(self, context: Any, reuse: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.hyperdrive_trial import run_trial

        return run_trial(self, context, reuse.ws)

    def on_reused(self, context: Any, record: dict[str, Any]) -> None:
        from mlpipe_provider.runtime.hyperdrive_trial import publish_reused

        super().on_reused(context, record)
        publish_reused(self, context, record)


class HyperDriveStepOperator(MlpipeStepOperator):
    """Rank a sweep's trials by the primary metric; publish the best trial's model and the
    metrics of all (the step's outputs, as v1's ``TrainingOutput`` declares them)."""

    ui_color = "#f6d9b5"

    def __init__(self, *, sweep: dict[str, Any], trial_count: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sweep = dict(sweep)
        self.trial_count = int(trial_count)
        self.trial_records: list[dict[str, Any]] | None = None

    def fingerprint_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        from mlpipe_provider.runtime.hyperdrive_step import step_settings

        return step_settings(self)

    def _run_step(self, context: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.hyperdrive_step import pull_trial_records
        from mlpipe_provider.runtime.hyperdrive_trial import board_for

        try:
            self.trial_records = pull_trial_records(self, context)
            return super()._run_step(context)
        finally:
            board_for(self, context).discard()  # every trial is done

    def produce(self, context: Any, reuse: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.hyperdrive_step import run_sweep_step

        return run_sweep_step(self, context, reuse.ws)
