"""The operator for ``PythonScriptStep``: run a script with its data resolved to real paths.

The class only holds the step's settings; the work is in ``mlpipe_provider.runtime`` and is
imported inside ``execute`` so that parsing a DAG file imports nothing but this small module.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class PythonScriptStepOperator(BaseOperator):
    """Run ``python SCRIPT ARGS`` for one pipeline step (no shell, arguments as a list).

    No field is templated: every value comes from the pipeline definition and must reach the
    script exactly as written, never through Jinja.
    """

    template_fields = ()
    ui_color = "#dbe9f6"

    def __init__(
        self,
        *,
        step_name: str,
        workspace: str,
        source_directory: str,
        script_name: str,
        arguments: list[Any] | None = None,
        inputs: list[dict[str, Any]] | None = None,
        outputs: list[dict[str, Any]] | None = None,
        step_params: dict[str, Any] | None = None,
        compute: dict[str, Any] | None = None,
        environment: dict[str, Any] | None = None,
        allow_reuse: bool = True,
        timeout_seconds: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.step_name = step_name
        self.workspace = workspace
        self.source_directory = source_directory
        self.script_name = script_name
        self.arguments = list(arguments or [])
        self.inputs = list(inputs or [])
        self.outputs = list(outputs or [])
        self.step_params = dict(step_params or {})
        self.compute = dict(compute or {})
        self.environment = dict(environment or {})
        self.allow_reuse = allow_reuse
        self.timeout_seconds = timeout_seconds

    def execute(self, context: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.script_step import run_script_step

        return run_script_step(self, context)
