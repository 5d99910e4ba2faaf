"""v1's ``HyperDriveStepRun``: a ``HyperDriveStep``'s run and its trials (child runs).

What it reads is the step's record: the step task writes every trial's run id, hyperparameters,
status, metrics and best primary metric value into it (``runtime/hyperdrive_step.py``), so a
reused step answers exactly as the run it reused did.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk.run import Run


class HyperDriveChildRun(Run):
    """One trial, as v1's child ``Run`` of a sweep: its metrics, status and arguments."""

    def __init__(self, parent: Any, trial: dict[str, Any]):
        super().__init__(
            experiment=getattr(parent, "experiment", None),
            run_id=trial["run_id"],
            _offline=True,
            _parent_id=getattr(parent, "id", None),
            _name=f"{getattr(parent, 'name', 'hyperdrive')}_{trial['index']}",
        )
        self._trial = trial

    def get_metrics(self, name: str | None = None, *args: Any, **kwargs: Any) -> dict[str, Any]:
        metrics = dict(self._trial.get("metrics") or {})
        if name is not None:
            return {name: metrics[name]} if name in metrics else {}
        return metrics

    def get_status(self) -> str:
        return str(self._trial.get("status"))

    @property
    def status(self) -> str:
        return self.get_status()

    def get_hyperparameters(self) -> dict[str, Any]:
        return dict(self._trial.get("hyperparameters") or {})

    def get_details(self) -> dict[str, Any]:
        return {
            "runId": self.id,
            "status": self.get_status(),
            "runDefinition": {
                "script": self._trial.get("script"),
                "arguments": list(self._trial.get("arguments") or []),
            },
            "properties": {
                "hyperparameters": self.get_hyperparameters(),
                "reused": self._trial.get("reused", False),
            },
        }

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, status={self.get_status()!r})"


class HyperDriveStepRun:
    """``HyperDriveStepRun(step_run=pipeline_run.find_step_run("tune")[0])``."""

    def __init__(self, step_run: Any):
        record = getattr(step_run, "_record", None)
        if not isinstance(record, dict):
            raise UserErrorException(
                f"HyperDriveStepRun: step_run must be a StepRun, got {type(step_run).__name__}"
            )
        self._step_run = step_run

    def __getattr__(self, name: str) -> Any:  # everything a StepRun has (outputs, logs, ...)
        return getattr(self._step_run, name)

    @property
    def _sweep(self) -> dict[str, Any]:
        self._step_run._refresh()
        sweep = self._step_run._record.get("hyperdrive")
        if not isinstance(sweep, dict):
            raise UserErrorException(
                f"step {self._step_run.name!r} has no sweep result (not a HyperDriveStep, or it "
                "has not finished)"
            )
        return sweep

    @property
    def id(self) -> str:
        return self._step_run.id

    @property
    def hyperdrive_config(self) -> dict[str, Any]:
        sweep = self._sweep
        return {k: v for k, v in sweep.items() if k != "trials"}

    def _trials(self) -> list[dict[str, Any]]:
        return list(self._sweep.get("trials") or [])

    def _sorted(self, trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
        maximize = self._sweep.get("primary_metric_goal") == "MAXIMIZE"
        scored = [t for t in trials if t.get("best_primary_metric") is not None]
        unscored = [t for t in trials if t.get("best_primary_metric") is None]
        sign = -1 if maximize else 1  # best first; ties: the earlier trial
        scored.sort(key=lambda t: (sign * t["best_primary_metric"], t["index"]))
        return scored + unscored

    def get_children(self, *args: Any, **kwargs: Any) -> list[HyperDriveChildRun]:
        return [HyperDriveChildRun(self._step_run, t) for t in self._trials()]

    def get_best_run_by_primary_metric(
        self,
        include_failed: bool = True,
        include_canceled: bool = True,
        include_resume_from_runs: bool = True,
    ) -> HyperDriveChildRun | None:
        """The trial with the best value of the primary metric it logged (None if none logged)."""
        trials = [
            t
            for t in self._trials()
            if (include_failed or t.get("status") != "Failed")
            and (include_canceled or t.get("status") != "Canceled")
            and t.get("best_primary_metric") is not None
        ]
        ranked = self._sorted(trials)
        return HyperDriveChildRun(self._step_run, ranked[0]) if ranked else None

    def get_children_sorted_by_primary_metric(
        self, top: int = 0, reverse: bool = False, discard_no_metric: bool = False
    ) -> list[dict[str, Any]]:
        """v1's rows: ``run_id``, ``hyperparameters``, ``best_primary_metric``, ``status``; best
        first (``reverse=True``: worst first); ``top`` > 0 keeps that many."""
        trials = self._trials()
        if discard_no_metric:
            trials = [t for t in trials if t.get("best_primary_metric") is not None]
        ranked = self._sorted(trials)
        if reverse:
            ranked = ranked[::-1]
        if top:
            ranked = ranked[:top]
        return [
            {
                "run_id": t["run_id"],
                "hyperparameters": dict(t.get("hyperparameters") or {}),
                "best_primary_metric": t.get("best_primary_metric"),
                "status": t.get("status"),
            }
            for t in ranked
        ]

    def get_hyperparameters(self) -> dict[str, dict[str, Any]]:
        """Trial run id -> the values it tried."""
        return {t["run_id"]: dict(t.get("hyperparameters") or {}) for t in self._trials()}

    def get_metrics(self) -> dict[str, dict[str, Any]]:
        """Trial run id -> the metrics it logged (v1: the child runs' metrics)."""
        return {t["run_id"]: dict(t.get("metrics") or {}) for t in self._trials()}

    def cancel(self) -> None:
        from mlpipe_provider.errors import NotSupportedError

        raise NotSupportedError("HyperDriveStepRun.cancel: cancel the pipeline run instead")

    def __repr__(self) -> str:
        return f"HyperDriveStepRun(step={self._step_run.name!r})"
