"""The operator for ``PythonScriptStep``: run a script with its data resolved to real paths.

``ProcessStepOperator`` is what it shares with the other kinds that run processes (estimator,
MPI, module, command).

The class only holds the step's settings; the work is in ``mlpipe_provider.runtime`` and is
imported inside ``execute`` so that parsing a DAG file imports nothing but this small module.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.operators.base import MlpipeStepOperator


class ProcessStepOperator(MlpipeStepOperator):
    """What every step that runs processes holds: its source folder, ``params`` (as
    ``AML_PARAMETER_*``), environment, time limit and launch shape. Subclasses say what runs
    (a script with arguments, a command) and produce it through ``runtime/script_step.py``."""

    def __init__(
        self,
        *,
        step_name: str,
        workspace: str,
        source_directory: str,
        inputs: list[dict[str, Any]] | None = None,
        outputs: list[dict[str, Any]] | None = None,
        step_params: dict[str, Any] | None = None,
        compute: dict[str, Any] | None = None,
        environment: dict[str, Any] | None = None,
        allow_reuse: bool = True,
        timeout_seconds: int | None = None,
        distribution: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            step_name=step_name,
            workspace=workspace,
            inputs=inputs,
            outputs=outputs,
            compute=compute,
            allow_reuse=allow_reuse,
            environment=environment,
            **kwargs,
        )
        self.source_directory = source_directory
        self.step_params = dict(step_params or {})
        self.environment = dict(environment or {})
        self.timeout_seconds = timeout_seconds
        self.distribution = dict(distribution or {})

    @property
    def reuse_has_effects(self) -> bool:
        """An ``OutputFileDatasetConfig`` with a destination or a registration: a reused result
        is copied and registered like a fresh one, so the step must start even when reused."""
        from mlpipe_provider.fingerprint import script_reuse_has_effects

        return script_reuse_has_effects(self.outputs)

    def on_reused(self, context: Any, record: dict[str, Any]) -> None:
        if self.reuse_has_effects:
            from mlpipe_provider.runtime.datasets import finish_reused_outputs

            finish_reused_outputs(self, record)


class PythonScriptStepOperator(ProcessStepOperator):
    """Run ``python SCRIPT ARGS`` for one pipeline step (no shell, arguments as a list).

    No field is templated: every value comes from the pipeline definition and must reach the
    script exactly as written, never through Jinja.
    """

    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        source_directory: str,
        script_name: str,
        arguments: list[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(source_directory=source_directory, **kwargs)
        self.script_name = script_name
        self.arguments = list(arguments or [])

    def fingerprint_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        from mlpipe_provider.fingerprint import script_settings

        return script_settings(self, params)

    def produce(self, context: Any, reuse: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.script_step import run_script

        return run_script(self, context, reuse.ws)
