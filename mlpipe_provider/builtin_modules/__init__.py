"""The built-in module library: everyday data preparation, training, scoring and evaluation.

Each built-in is an ordinary module script in ``scripts/`` (pandas and scikit-learn), published
into a workspace as a ``Module``/``ModuleVersion`` by ``mlpipe_provider.sdk.install_builtin_modules``
(or ``mlpipe modules install-builtins``), so a ``ModuleStep`` runs, fingerprints and reuses it
like any module. Their interface lives in ``scripts/_catalogue.py``, inside the snapshot, so the
compile-time parameter checks here and the scripts' own run-time checks share one definition.
This package imports nothing of the SDK: the SDK's installer and the compiler import it.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

SCRIPTS_DIR = Path(__file__).parent / "scripts"
# copied into every built-in's snapshot next to its script (scripts import them as siblings)
SHARED_FILES = ("_catalogue.py", "_common.py")


@cache
def catalogue() -> ModuleType:
    """``scripts/_catalogue.py`` loaded as a module (it is a sibling file of the scripts, not a
    package module, so that a published snapshot holds it)."""
    name = "mlpipe_provider.builtin_modules._catalogue"
    spec = importlib.util.spec_from_file_location(name, SCRIPTS_DIR / "_catalogue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def names() -> list[str]:
    """The built-in module names, in catalogue order (the designer's palette order)."""
    return list(catalogue().MODULES)


def definition(name: str) -> dict[str, Any]:
    return catalogue().MODULES[name]


def is_builtin(module_name: str, category: str | None) -> bool:
    """True for a module the installer published (by name and its ``Built-in`` category)."""
    return category == catalogue().CATEGORY and module_name in catalogue().MODULES


def check_params(
    module_name: str, values: dict[str, Any], bound_inputs: Any = ()
) -> list[tuple[str, str]]:
    """``(field, message)`` for every bad parameter value of a built-in step, at compile time.

    ``values`` holds literals (a PipelineParameter's default stands for it); ``bound_inputs``
    names the input ports the step connects. A Train Model's ``estimator_params`` are checked
    against the estimator's own parameters, and naming an estimator while an untrained model
    is connected is refused (the model would silently win).
    """
    cat = catalogue()
    problems = cat.check_params(module_name, values)
    if module_name == "Train Model" and not problems:
        specs = cat.MODULES[module_name]["params"]
        estimator = values.get("estimator", specs["estimator"]["default"])
        raw = values.get("estimator_params", specs["estimator_params"]["default"])
        parsed = cat.parse_value(specs["estimator_params"], raw)
        if "untrained_model" in bound_inputs:
            if estimator != specs["estimator"]["default"] or parsed:
                field = (
                    "estimator"
                    if estimator != specs["estimator"]["default"]
                    else "estimator_params"
                )
                problems.append(
                    (
                        f"params[{field!r}]",
                        f"built-in module {module_name!r}: an untrained model is connected "
                        f"to 'untrained_model', so the estimator comes from it; leave {field!r} "
                        "at its default (or disconnect the untrained model)",
                    )
                )
            return problems
        try:
            cat.make_estimator(estimator, parsed)
        except (ValueError, TypeError) as exc:
            problems.append(
                ("params['estimator_params']", f"built-in module {module_name!r}: {exc}")
            )
    return problems
