"""``CommandStep`` (and ``Experiment.submit(ScriptRunConfig)``): a command run without a shell.

v1 ran a command through bash. Here a command is an argument list (invariant 7): each string item
is split into words with ``shlex`` at compile time, and data and parameters stay whole arguments
(placeholders the operator fills in, as in a ``PythonScriptStep``'s arguments). A command that
needs a shell to mean what it says (a pipe, ``&&``, ``;``, a redirect, a substitution, a variable)
would silently mean something else as a list, so it is refused here, naming the step, the field
and the syntax. Everything else (environment, time limit, distribution, GPU pools) is lowered
exactly as for ``PythonScriptStep``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from compiler.kinds import StepKind, register
from compiler.kinds.distributed import check_capacity, lower_distribution
from compiler.kinds.script import lower_timeout, process_kwargs, runconfig_shape
from mlpipe_provider.runtime.command import PYTHON_WORDS
from mlpipe_provider.runtime.step_context import TOKEN_RE

#: what a shell expands after ``$``: a name, a positional parameter or a special parameter
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9?$!#@*-]")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class ShellSyntaxError(ValueError):
    """The command text means something only a shell gives it."""


def _dollar(text: str, at: int) -> str | None:
    """What ``$`` at ``at`` starts, if a shell would expand it (a data reference token aside)."""
    if TOKEN_RE.match(text, at):
        return None
    rest = text[at + 1 : at + 2]
    if rest == "(":
        return "a command substitution ($(...))"
    if rest == "{":
        return "a variable expansion (${...})"
    if rest in ("'", '"'):
        return f"a quoting form of its own (${rest}...{rest})"
    name = _VARIABLE.match(text, at + 1)
    if name:
        return f"a variable expansion (${name.group()})"
    return None


def shell_syntax(text: str) -> str | None:
    """The first shell construct in ``text`` (quotes respected, as bash reads them), or None."""
    quote = ""
    word_start = True
    index = 0
    while index < len(text):
        char = text[index]
        if quote == "'":
            if char == "'":
                quote = ""
        elif char == "\\":
            index += 1  # an escaped character is literal (in double quotes too, near enough)
        elif char == "`":
            return "a command substitution (`...`)"
        elif char == "$":
            found = _dollar(text, index)
            if found:
                return found
        elif quote == '"':
            if char == '"':
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "|&;<>()\n":
            return {
                "|": "a pipe (|)",
                "&": "a control operator (& or &&)",
                ";": "a command separator (;)",
                "<": "a redirect (<)",
                ">": "a redirect (>)",
                "(": "a subshell or grouping (( ))",
                ")": "a subshell or grouping (( ))",
                "\n": "a line break (a second command)",
            }[char]
        elif char == "#" and word_start:
            return "a comment (#)"
        word_start = char in " \t" and not quote
        index += 1
    return None


def split_command_text(text: str) -> list[str]:
    """``text``'s words as bash would split them, or ``ShellSyntaxError`` saying why not."""
    found = shell_syntax(text)
    if found:
        raise ShellSyntaxError(found)
    try:
        return shlex.split(text)
    except ValueError as exc:  # an unclosed quote
        raise ShellSyntaxError(str(exc).lower()) from None


def lower_command(
    lowering: Any, step: Any, arguments: list[Any], splits: tuple[bool, ...], field: str
) -> list[Any]:
    """The command as an argument list: text split into words, placeholders kept whole."""
    command: list[Any] = []
    refused = False
    for index, (item, split) in enumerate(zip(arguments, splits, strict=True)):
        where = f"{field}[{index}]" if len(arguments) > 1 or field != "command" else field
        if not (split and isinstance(item, str)):
            command.append(item)
            continue
        try:
            words = split_command_text(item)
        except ShellSyntaxError as why:
            lowering.problem(
                step,
                where,
                f"{item!r} needs a shell ({why}): a CommandStep runs its command as an argument "
                "list, never through a shell. Put the shell logic in a script in "
                "source_directory and run that (e.g. 'python run.py' or 'bash run.sh'), or pass "
                "data and parameters as items of the command list",
            )
            refused = True
            continue
        if not command and words and _ASSIGNMENT.match(words[0]):
            lowering.problem(
                step,
                where,
                f"{item!r} needs a shell (a variable assignment, {words[0].split('=')[0]}=...): "
                "set environment variables on the environment (Environment.environment_variables)",
            )
            refused = True
            continue
        command.extend(words)
    if not command and not refused:
        lowering.problem(step, field, "the command is empty")
    return command


def _check_program(lowering: Any, step: Any, command: list[Any], source: Path, field: str) -> None:
    """What can be checked before a worker runs it: a script or program in the source folder."""
    head = command[0] if command else None
    if not isinstance(head, str):
        if head is not None:
            lowering.problem(step, field, "the command must start with a program name, not data")
        return
    if head in PYTHON_WORDS:
        script = command[1] if len(command) > 1 else None
        if isinstance(script, str) and script.endswith(".py") and not script.startswith("-"):
            _check_in_source(lowering, step, source, script, field)
        return
    if "/" in head and not head.startswith("/"):
        _check_in_source(lowering, step, source, head, field)


def _check_in_source(lowering: Any, step: Any, source: Path, name: str, field: str) -> None:
    path = (source / name).resolve()
    if not path.is_relative_to(source.resolve()):
        lowering.problem(step, field, f"{name!r} is outside source_directory")
    elif not path.is_file():
        lowering.problem(step, field, f"{name!r} not found in source_directory {str(source)!r}")


def _lower(lowering: Any, step: Any, spec: dict[str, Any]) -> None:
    source = Path(step.source_directory or lowering.pipeline.script_folder)
    field = step.command_field
    command = lower_command(lowering, step, spec["arguments"], step.command_splits, field)
    if not source.is_dir():
        lowering.problem(step, "source_directory", f"folder {str(source)!r} does not exist")
    else:
        _check_program(lowering, step, command, source, field)
    spec["command"] = command
    spec["source_directory"] = str(source)
    run_config = step.run_config
    spec["environment"] = lowering.lower_environment(step, run_config)
    spec["timeout_seconds"] = lower_timeout(lowering, step, run_config)
    spec["distribution"] = lower_distribution(
        lowering,
        step,
        runconfig_shape(run_config),
        step.runconfig_pipeline_params,
        "runconfig.",
    )
    check_capacity(lowering, step, spec, use_gpu=False)


def command_kwargs(spec: dict[str, Any], dag_dir: Path) -> list[tuple[str, Any]]:
    return process_kwargs(spec, dag_dir, [("command", spec["command"])])


register(
    StepKind(
        "command",
        "mlpipe_provider.operators.command",
        "CommandStepOperator",
        _lower,
        command_kwargs,
    )
)
