"""Load pipeline definitions from Python files without running their ``main()``.

A file is imported under a private module name (never ``__main__``), so the usual
``if __name__ == "__main__": main()`` guard keeps experiments from being submitted. Module-level
``Pipeline`` objects are found by type; ``FILE.py:NAME`` picks one variable or calls a builder
function with the workspace.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import MlpipeError, PipelineValidationError, UserErrorException
from mlpipe_provider.sdk.experiment import submits_blocked


@dataclass
class FoundPipeline:
    dag_id: str
    pipeline: Any
    origin: str


@contextlib.contextmanager
def _in_directory(folder: Path) -> Iterator[None]:
    """v1 resolves ``source_directory`` against the cwd: run the definition from its own folder."""
    previous = Path.cwd()
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        os.chdir(previous)
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


def _user_code_error(path: Path, exc: BaseException, doing: str) -> UserErrorException:
    """A one-line error for an exception in the user's pipeline file, pointing at its line."""
    where = str(path)
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = f"{exc.filename or path}:{exc.lineno}"
    else:
        lines = [
            frame.lineno
            for frame in traceback.extract_tb(exc.__traceback__)
            if Path(frame.filename) == path
        ]
        if lines:
            where = f"{path}:{lines[-1]}"
    return UserErrorException(f"{where}: {doing} raised {type(exc).__name__}: {exc}")


def _located(path: Path, exc: MlpipeError) -> MlpipeError:
    """mlpipe's own error from the user's file, with the file and line it came from in front.

    The message already names the step and field; the line says which of several similar steps
    it was. A ``PipelineValidationError`` (a list of problems) and errors that cannot be rebuilt
    from one message are passed on unchanged.
    """
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename) == path
    ]
    if not lines or isinstance(exc, PipelineValidationError):
        return exc
    try:
        located = type(exc)(f"{path}:{lines[-1]}: {exc}")
    except Exception:
        return exc
    return located


def _import_file(path: Path) -> Any:
    digest = hashlib.blake2s(str(path).encode(), digest_size=6).hexdigest()
    module_name = f"mlpipe_pipeline_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserErrorException(f"cannot import pipeline file {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except MlpipeError as exc:
        sys.modules.pop(module_name, None)
        located = _located(path, exc)
        if located is exc:
            raise
        raise located from exc
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise _user_code_error(path, exc, "importing the pipeline file") from exc
    return module


def load_pipelines(
    target: str, *, dag_id: str | None = None, origin_root: Path | None = None
) -> list[FoundPipeline]:
    """Every pipeline that ``target`` (``FILE.py`` or ``FILE.py:NAME``) defines, with its DAG id."""
    from mlpipe_provider.sdk.pipeline import Pipeline
    from mlpipe_provider.sdk.workspace import Workspace

    file_part, _, attr = target.partition(":")
    if ":" in target and len(file_part) == 1:  # a Windows drive letter, not FILE:NAME
        file_part, attr = target, ""
    path = Path(file_part).resolve()
    if not path.is_file():
        raise UserErrorException(f"pipeline file {file_part!r} not found")
    origin_base = origin_root or Path.cwd()
    try:
        origin = path.relative_to(origin_base.resolve()).as_posix()
    except ValueError:
        origin = path.name
    with _in_directory(path.parent), submits_blocked():
        module = _import_file(path)
        found: list[FoundPipeline] = []
        if attr:
            if not hasattr(module, attr):
                raise UserErrorException(f"{file_part}: no variable or function named {attr!r}")
            value = getattr(module, attr)
            if callable(value) and not isinstance(value, Pipeline):
                takes_args = bool(inspect.signature(value).parameters)
                try:
                    value = value(Workspace.from_config()) if takes_args else value()
                except MlpipeError as exc:
                    located = _located(path, exc)
                    if located is exc:
                        raise
                    raise located from exc
                except (Exception, SystemExit) as exc:
                    raise _user_code_error(path, exc, f"calling {attr}()") from exc
                name = path.stem
            else:
                name = attr
            if not isinstance(value, Pipeline):
                raise UserErrorException(
                    f"{target}: expected a Pipeline, got {type(value).__name__}"
                )
            found.append(FoundPipeline(dag_id or name, value, f"{origin}:{attr}"))
        else:
            for name, value in vars(module).items():
                if isinstance(value, Pipeline) and not name.startswith("_"):
                    found.append(FoundPipeline(name, value, origin))
            if not found:
                raise UserErrorException(
                    f"{file_part}: no module-level Pipeline found; expose one, or name a builder "
                    "function as FILE.py:FUNCTION"
                )
            if dag_id is not None:
                if len(found) > 1:
                    raise UserErrorException(
                        f"{file_part} defines {len(found)} pipelines; --dag-id needs exactly one"
                    )
                found[0].dag_id = dag_id
    return found
