"""A ``CommandStep``'s argument list, made ready to start without a shell.

The compiler already split the command into words (``compiler/kinds/command.py``); here only the
program is found. ``python`` (or ``python3``) is the step's Python: its environment's interpreter
on the local backend, the image's in a container, as v1 ran ``python`` inside the job's
environment. Any other program is looked up the way a shell would find it, but without one: a
path with a ``/`` is relative to the folder the step runs in, a bare name is searched on ``PATH``
with the environment's ``bin`` folder first, so tools installed into the step's environment (its
pip packages' console scripts) are found before the worker's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mlpipe_provider.errors import UserErrorException

#: first words that run the step's Python (its environment's interpreter), as v1 ran them
PYTHON_WORDS = frozenset({"python", "python3"})


def command_argv(
    rendered: list[str],
    *,
    python: str,
    env: dict[str, str],
    run_dir: Path,
    local: bool,
    step_name: str,
) -> tuple[list[str], bool]:
    """``(argv, runs_python)``; ``env``'s ``PATH`` gains the environment's ``bin`` folder."""
    if not rendered:
        raise UserErrorException(f"step {step_name!r}, field 'command': the command is empty")
    if local:  # the step's Python's folder first: its environment's programs before the worker's
        bin_dir = str(Path(python).parent)
        path = env.get("PATH", "")
        if bin_dir not in path.split(os.pathsep):
            env["PATH"] = os.pathsep.join(p for p in (bin_dir, path) if p)
    head, rest = rendered[0], rendered[1:]
    if head in PYTHON_WORDS:
        return [python, *rest], True
    if not local:
        return list(rendered), False  # the image's program, found in the image
    return [_find_program(head, env, run_dir, step_name), *rest], False


def _find_program(head: str, env: dict[str, str], run_dir: Path, step_name: str) -> str:
    if "/" in head:
        path = Path(head) if os.path.isabs(head) else run_dir / head
        if not path.is_file():
            raise UserErrorException(
                f"step {step_name!r}, field 'command': program {head!r} not found (in {run_dir})"
            )
        if not os.access(path, os.X_OK):
            raise UserErrorException(
                f"step {step_name!r}, field 'command': {head!r} is not executable; make it "
                f"executable (chmod +x) or name its interpreter first (e.g. 'bash {head}')"
            )
        return str(path)
    found = shutil.which(head, path=env.get("PATH", ""))
    if found is None:
        raise UserErrorException(
            f"step {step_name!r}, field 'command': program {head!r} not found on the worker's "
            "PATH (install it on the workers, into the step's environment, or give its path)"
        )
    return found
