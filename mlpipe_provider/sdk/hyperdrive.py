"""v1's ``HyperDriveConfig`` and ``PrimaryMetricGoal`` (``azureml.train.hyperdrive``).

The config says what one trial runs (a ``ScriptRunConfig`` or an estimator), which values the
trials try, which logged metric ranks them and how many run. It only describes; a
``HyperDriveStep`` takes it into a pipeline (``Experiment.submit(HyperDriveConfig)`` on its own is
not supported: put it in a one-step pipeline).
"""

from __future__ import annotations

import enum
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk.hyperdrive_policy import EarlyTerminationPolicy, NoTerminationPolicy
from mlpipe_provider.sdk.hyperdrive_space import (
    BayesianParameterSampling,
    HyperParameterSampling,
)

#: v1's limits
MAX_TOTAL_RUNS = 1000
MAX_CONCURRENT_RUNS = 100


class PrimaryMetricGoal(enum.StrEnum):
    """Whether a larger or a smaller primary metric is better."""

    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


def _goal(value: Any) -> PrimaryMetricGoal:
    if isinstance(value, PrimaryMetricGoal):
        return value
    if isinstance(value, str) and value.upper() in PrimaryMetricGoal.__members__:
        return PrimaryMetricGoal[value.upper()]
    raise UserErrorException(
        f"HyperDriveConfig: primary_metric_goal must be PrimaryMetricGoal.MAXIMIZE or "
        f"PrimaryMetricGoal.MINIMIZE, got {value!r}"
    )


def _positive(value: Any, field: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise UserErrorException(
            f"HyperDriveConfig: {field} must be an integer from 1 to {most}, got {value!r}"
        )
    return value


class HyperDriveConfig:
    """A hyperparameter sweep: trials of one script with sampled arguments."""

    def __init__(
        self,
        hyperparameter_sampling: HyperParameterSampling,
        primary_metric_name: str,
        primary_metric_goal: PrimaryMetricGoal,
        max_total_runs: int,
        max_concurrent_runs: int | None = None,
        max_duration_minutes: int = 10080,
        policy: EarlyTerminationPolicy | None = None,
        estimator: Any = None,
        run_config: Any = None,
        resume_from: Any = None,
        resume_child_runs: Any = None,
        pipeline: Any = None,
        debug_flag: Any = None,
        custom_run_id: str | None = None,
    ):
        from mlpipe_provider.sdk.estimator import Estimator
        from mlpipe_provider.sdk.script_run_config import ScriptRunConfig

        if not isinstance(hyperparameter_sampling, HyperParameterSampling):
            raise UserErrorException(
                "HyperDriveConfig: hyperparameter_sampling must be a RandomParameterSampling, "
                "GridParameterSampling or BayesianParameterSampling, got "
                f"{type(hyperparameter_sampling).__name__}"
            )
        if not isinstance(primary_metric_name, str) or not primary_metric_name:
            raise UserErrorException(
                "HyperDriveConfig: primary_metric_name must be the name of a metric the script "
                f"logs, got {primary_metric_name!r}"
            )
        if (estimator is None) == (run_config is None):
            raise UserErrorException(
                "HyperDriveConfig: give exactly one of run_config (a ScriptRunConfig) and estimator"
            )
        if run_config is not None and not isinstance(run_config, ScriptRunConfig):
            raise UserErrorException(
                f"HyperDriveConfig: run_config must be a ScriptRunConfig, got {type(run_config).__name__}"
            )
        if run_config is not None and run_config.script is None:
            raise UserErrorException(
                "HyperDriveConfig: run_config must name a script (ScriptRunConfig(script=...)): "
                "the sampled values are passed to it as arguments"
            )
        if estimator is not None and not isinstance(estimator, Estimator):
            raise UserErrorException(
                f"HyperDriveConfig: estimator must be an Estimator, got {type(estimator).__name__}"
            )
        if policy is not None and not isinstance(policy, EarlyTerminationPolicy):
            raise UserErrorException(
                "HyperDriveConfig: policy must be a BanditPolicy, MedianStoppingPolicy, "
                f"TruncationSelectionPolicy or NoTerminationPolicy, got {type(policy).__name__}"
            )
        if isinstance(hyperparameter_sampling, BayesianParameterSampling) and not isinstance(
            policy, (type(None), NoTerminationPolicy)
        ):
            # v1 refuses this too: Bayesian proposals learn from trials that ran to their end
            raise UserErrorException(
                "HyperDriveConfig: BayesianParameterSampling takes no early termination policy "
                "(policy=None or NoTerminationPolicy())"
            )
        for field, value in (
            ("resume_from", resume_from),
            ("resume_child_runs", resume_child_runs),
        ):
            if value is not None:
                from mlpipe_provider.errors import NotSupportedError

                raise NotSupportedError(
                    f"HyperDriveConfig: {field} is not supported by mlpipe (warm start from an "
                    "earlier sweep); unchanged trials are reused anyway"
                )
        if pipeline is not None:
            from mlpipe_provider.errors import NotSupportedError

            raise NotSupportedError(
                "HyperDriveConfig: pipeline= (sweeping a whole pipeline) is not supported; sweep "
                "a ScriptRunConfig in a HyperDriveStep"
            )
        self._sampling = hyperparameter_sampling
        self._primary_metric_name = primary_metric_name
        self._primary_metric_goal = _goal(primary_metric_goal)
        self._max_total_runs = _positive(max_total_runs, "max_total_runs", MAX_TOTAL_RUNS)
        self._max_concurrent_runs = (
            None
            if max_concurrent_runs is None
            else _positive(max_concurrent_runs, "max_concurrent_runs", MAX_CONCURRENT_RUNS)
        )
        self._max_duration_minutes = _positive(max_duration_minutes, "max_duration_minutes", 10**7)
        self._policy = policy if policy is not None else NoTerminationPolicy()
        self.estimator = estimator
        self.run_config = run_config
        self.debug_flag = debug_flag
        self.custom_run_id = custom_run_id

    # v1's read-only properties
    @property
    def hyperparameter_sampling(self) -> HyperParameterSampling:
        return self._sampling

    @property
    def primary_metric_name(self) -> str:
        return self._primary_metric_name

    @property
    def primary_metric_goal(self) -> PrimaryMetricGoal:
        return self._primary_metric_goal

    @property
    def max_total_runs(self) -> int:
        return self._max_total_runs

    @property
    def max_concurrent_runs(self) -> int | None:
        return self._max_concurrent_runs

    @property
    def max_duration_minutes(self) -> int:
        return self._max_duration_minutes

    @property
    def policy(self) -> EarlyTerminationPolicy:
        return self._policy

    @property
    def source_directory(self) -> str | None:
        what = self.run_config if self.run_config is not None else self.estimator
        return what.source_directory

    @property
    def script(self) -> str:
        return (
            self.run_config.script if self.run_config is not None else self.estimator.entry_script
        )

    def __repr__(self) -> str:
        return (
            f"HyperDriveConfig({self._sampling!r}, primary_metric_name="
            f"{self._primary_metric_name!r}, max_total_runs={self._max_total_runs})"
        )
