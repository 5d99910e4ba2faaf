"""v1's ``CommandStep``: run a command (any executable, ``python train.py`` the usual one) as a step.

The command comes from ``command=`` or from the ``ScriptRunConfig`` given as ``runconfig`` (its
``command``, else ``python SCRIPT ARGUMENTS``). Its items become the step's arguments, so data
(``DataReference``, ``PipelineData``, datasets) and ``PipelineParameter``s in it are inputs,
outputs and parameters exactly as in a ``PythonScriptStep``'s arguments; the compiler then splits
each string item into words (``compiler/kinds/command.py``): a command never runs through a shell.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.sdk.steps import PipelineStep, _resolve_source_directory


class CommandStep(PipelineStep):
    """Run ``command`` from ``source_directory`` on a compute target (v1 ``CommandStep``)."""

    _step_kind = "command"

    def __init__(
        self,
        command: list | str | None = None,
        name: str | None = None,
        compute_target: Any = None,
        runconfig: Any = None,
        runconfig_pipeline_params: dict | None = None,
        inputs: list | None = None,
        outputs: list | None = None,
        params: dict | None = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
    ):
        from mlpipe_provider.sdk.environment import RunConfiguration
        from mlpipe_provider.sdk.script_run_config import ScriptRunConfig

        src = runconfig if isinstance(runconfig, ScriptRunConfig) else None
        if runconfig is not None and src is None and not isinstance(runconfig, RunConfiguration):
            raise UserErrorException(
                f"CommandStep {name!r}: runconfig must be a ScriptRunConfig or a "
                f"RunConfiguration, got {type(runconfig).__name__}"
            )
        run_config = src.run_config if src is not None else runconfig
        items, split, field = _command_items(command, src, run_config, name)
        super().__init__(name or _first_word(items), inputs, outputs, items)
        if params is not None and not isinstance(params, dict):
            raise UserErrorException(
                f"step {self.name!r}: params must be a dict, got {type(params).__name__}"
            )
        if not isinstance(allow_reuse, bool):
            raise UserErrorException(
                f"step {self.name!r}: allow_reuse must be True or False, got {allow_reuse!r}"
            )
        self.command = command
        self.runconfig = runconfig
        self.run_config = run_config
        self.runconfig_pipeline_params = dict(runconfig_pipeline_params or {})
        self.params = dict(params or {})
        if compute_target is None and run_config is not None:
            compute_target = run_config.target  # v1: "the target from the runconfig is used"
        self.compute_target = compute_target
        self._source_directory = _resolve_source_directory(source_directory, self.name) or (
            src.source_directory if src is not None else None
        )
        self._allow_reuse = allow_reuse
        self.version = version
        self._split = tuple(split)
        self._command_field = field

    @property
    def source_directory(self) -> str | None:
        return self._source_directory

    # --- what the compiler reads (read-only; not v1 API) --------------------------------------
    @property
    def command_splits(self) -> tuple[bool, ...]:
        """For each item of ``arguments``: whether it is command text to split into words (a
        string of ``command``) or one whole argument (data, a parameter, a script argument)."""
        return self._split

    @property
    def arguments_field(self) -> str:
        return self._command_field

    @property
    def command_field(self) -> str:
        """Where the command was given, for error messages: ``command`` or ``runconfig.command``
        (``runconfig.script`` when it is ``python SCRIPT ARGUMENTS``)."""
        return self._command_field


def _command_items(
    command: Any, src: Any, run_config: Any, name: str | None
) -> tuple[list[Any], list[bool], str]:
    """The command's items, which of them are text to split, and the field they came from."""
    if command is not None:
        return (*_as_items(command, name, "command"), "command")
    given = getattr(src, "command", None) if src is not None else None
    if given is None and run_config is not None:
        given = getattr(run_config, "command", None)
    if given:
        return (*_as_items(given, name, "runconfig.command"), "runconfig.command")
    if src is not None and src.script:
        # v1 runs a ScriptRunConfig's script with the Python of its environment
        items = ["python", src.script, *src.arguments]
        return items, [False] * len(items), "runconfig.script"
    raise UserErrorException(
        f"CommandStep {name!r}: command is required unless runconfig (a ScriptRunConfig) gives "
        "a command or a script"
    )


def _as_items(command: Any, name: str | None, field: str) -> tuple[list[Any], list[bool]]:
    if isinstance(command, str):
        items: list[Any] = [command]
    elif isinstance(command, (list, tuple)):
        items = list(command)
    else:
        raise UserErrorException(
            f"CommandStep {name!r}: {field} must be a string or a list, got {type(command).__name__}"
        )
    if not items:
        raise UserErrorException(f"CommandStep {name!r}: {field} is empty")
    return items, [isinstance(item, str) for item in items]


def _first_word(items: list[Any]) -> str:
    """v1's default step name: the command's first word."""
    first = items[0] if items else None
    words = first.split() if isinstance(first, str) else []
    return words[0] if words else "command"
