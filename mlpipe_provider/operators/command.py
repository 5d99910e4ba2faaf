"""The operator for ``CommandStep``: run a command, as an argument list, from the step's folder.

It holds what a ``PythonScriptStepOperator`` holds, with ``command`` (words and data/parameter
placeholders, split by the compiler) in place of a script and its arguments; the run is the same
(``runtime/script_step.py``), so reuse, environments, backends and GPU pools behave alike.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.operators.script import ProcessStepOperator


class CommandStepOperator(ProcessStepOperator):
    """Run ``COMMAND...`` for one pipeline step (no shell; ``python`` is the step's Python)."""

    ui_color = "#dcf2e3"

    def __init__(self, *, source_directory: str, command: list[Any], **kwargs: Any) -> None:
        super().__init__(source_directory=source_directory, **kwargs)
        self.command = list(command)

    @property
    def arguments(self) -> list[Any]:
        """The command, for what reads a step's arguments (MLflow's run parameters)."""
        return self.command

    def fingerprint_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        from mlpipe_provider.fingerprint import command_settings

        return command_settings(self, params)

    def produce(self, context: Any, reuse: Any) -> dict[str, Any]:
        from mlpipe_provider.runtime.script_step import run_command

        return run_command(self, context, reuse.ws)
