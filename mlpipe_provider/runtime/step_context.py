"""Resolve a step's inputs, outputs, parameters and arguments to concrete values for one run."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipe_provider.config import WorkspaceConfig, load_config, resolve_workspace_dir
from mlpipe_provider.datastores import DatastoreAccess, open_datastore
from mlpipe_provider.errors import UserErrorException

TOKEN_RE = re.compile(r"\$AZUREML_DATAREFERENCE_([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class StepWorkspace:
    """The workspace as a running step sees it, with datastores opened once."""

    directory: Path
    config: WorkspaceConfig
    _opened: dict[str, DatastoreAccess] = field(default_factory=dict)

    @classmethod
    def for_operator(cls, recorded: str, dag_file: str | None) -> StepWorkspace:
        base = Path(dag_file).resolve().parent if dag_file else None
        directory = resolve_workspace_dir(recorded, base)
        return cls(directory, load_config(directory))

    def datastore(self, name: str) -> DatastoreAccess:
        if name not in self._opened:
            self._opened[name] = open_datastore(self.directory, self.config, name)
        return self._opened[name]


def argument_to_str(value: Any) -> str:
    """How v1 rendered a literal argument on the command line."""
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def substitute_tokens(text: str, paths: dict[str, str], step_name: str, index: int) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in paths:
            raise UserErrorException(
                f"step {step_name!r}, field 'arguments[{index}]': ${{AZUREML_DATAREFERENCE_{name}}} "
                "names no input or output of this step"
            )
        return paths[name]

    return TOKEN_RE.sub(replace, text)


def resolve_parameter(name: str, params: dict[str, Any], step_name: str) -> Any:
    if name not in params:
        raise UserErrorException(
            f"step {step_name!r}: PipelineParameter {name!r} has no value in this run"
        )
    return params[name]


def render_arguments(
    arguments: list[Any],
    *,
    inputs: dict[str, str],
    outputs: dict[str, str],
    params: dict[str, Any],
    step_name: str,
) -> list[str]:
    paths = {**inputs, **outputs}
    rendered: list[str] = []
    for index, item in enumerate(arguments):
        if isinstance(item, dict):
            if "input" in item:
                rendered.append(inputs[item["input"]])
            elif "output" in item:
                rendered.append(outputs[item["output"]])
            elif "param" in item:
                rendered.append(
                    argument_to_str(resolve_parameter(item["param"], params, step_name))
                )
            else:
                raise UserErrorException(
                    f"step {step_name!r}, field 'arguments[{index}]': unknown placeholder {item!r}"
                )
        elif isinstance(item, str):
            rendered.append(substitute_tokens(item, paths, step_name, index))
        else:
            rendered.append(argument_to_str(item))
    return rendered
