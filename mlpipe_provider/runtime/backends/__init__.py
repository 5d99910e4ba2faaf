"""Where a step's processes run: the compute target's backend (local, docker, kubernetes).

Every backend gets the same ``Launch``: the commands (one per rank) with their environment, the
step's source folder, and the host paths of its inputs, outputs and run folder, which a container
backend mounts at the same paths (inputs read-only) so arguments need no rewriting.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime.process import Command, ProcessResult, run_group

BACKEND_MODULES = {
    "docker": "mlpipe_provider.runtime.backends.docker",
    "kubernetes": "mlpipe_provider.runtime.backends.kubernetes",
}


@dataclass
class Launch:
    op: Any
    context: Any
    commands: list[Command]
    source_dir: Path
    input_paths: dict[str, str] = field(default_factory=dict)
    output_paths: dict[str, str] = field(default_factory=dict)
    run_folder: Path | None = None
    timeout_s: float | None = None
    devices: list[str] | None = None
    #: whether each command's first item is the step's Python, which a container backend replaces
    #: with the image's; else it is a program the image has (a ``CommandStep``'s ``Rscript``)
    runs_python: bool = True


def run_launch(launch: Launch) -> ProcessResult:
    op = launch.op
    backend = op.compute.get("backend", "local")
    if backend == "local":
        return run_group(
            launch.commands,
            cwd=launch.source_dir,
            log_out=lambda line: op.log.info("%s", line),
            log_err=lambda line: op.log.warning("%s", line),
            timeout_s=launch.timeout_s,
            step_name=op.step_name,
            label=getattr(op, "script_name", None) or Path(launch.commands[0].argv[0]).name,
        )
    module = BACKEND_MODULES.get(backend)
    if module is None:
        raise UserErrorException(f"step {op.step_name!r}: unknown compute backend {backend!r}")
    return importlib.import_module(module).run(launch)
