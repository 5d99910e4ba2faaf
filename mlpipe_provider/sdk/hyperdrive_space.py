"""v1's hyperparameter space: the parameter expressions and the three sampling methods.

As in ``azureml.train.hyperdrive``, an expression is a plain list (``uniform(0, 1)`` is
``["uniform", [0, 1]]``), so a program that prints or builds one by hand keeps working. The
sampling classes check at construction what v1 checks (grid takes only ``choice``, Bayesian
only ``choice``/``uniform``/``quniform``), naming the parameter; which trials run is decided by
the compiler (``compiler/kinds/hyperdrive_trials.py``) and, for Bayesian sampling, by Optuna when
the trials run.
"""

from __future__ import annotations

import math
from typing import Any

from mlpipe_provider.errors import UserErrorException

#: expression name -> how many arguments it takes (choice: any number of options)
EXPRESSIONS = {
    "choice": None,
    "randint": 1,
    "uniform": 2,
    "quniform": 3,
    "loguniform": 2,
    "qloguniform": 3,
    "normal": 2,
    "qnormal": 3,
    "lognormal": 2,
    "qlognormal": 3,
}


def _number(value: Any, what: str, expression: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserErrorException(f"{expression}: {what} must be a finite number, got {value!r}")
    return value


def choice(*options: Any) -> list:
    """One of ``options`` (``choice(1, 2, 3)``, ``choice([1, 2, 3])`` or ``choice(range(3))``)."""
    if len(options) == 1 and isinstance(options[0], (list, tuple, range)):
        options = tuple(options[0])
    if not options:
        raise UserErrorException("choice: give at least one option")
    for option in options:
        if not (option is None or isinstance(option, (str, int, float, bool))):
            raise UserErrorException(
                f"choice: options must be strings, numbers or booleans, got {type(option).__name__}"
            )
    return ["choice", [list(options)]]


def randint(upper: int) -> list:
    """An integer in ``[0, upper)``."""
    if isinstance(upper, bool) or not isinstance(upper, int) or upper < 1:
        raise UserErrorException(f"randint: upper must be a positive integer, got {upper!r}")
    return ["randint", [upper]]


def _bounded(name: str, low: Any, high: Any, q: Any = None) -> list:
    _number(low, "min_value", name)
    _number(high, "max_value", name)
    if low >= high:
        raise UserErrorException(
            f"{name}: min_value must be below max_value, got {low!r}, {high!r}"
        )
    if q is None:
        return [name, [low, high]]
    if _number(q, "q", name) <= 0:
        raise UserErrorException(f"{name}: q must be positive, got {q!r}")
    return [name, [low, high, q]]


def _spread(name: str, mu: Any, sigma: Any, q: Any = None) -> list:
    _number(mu, "mu", name)
    if _number(sigma, "sigma", name) <= 0:
        raise UserErrorException(f"{name}: sigma must be positive, got {sigma!r}")
    if q is None:
        return [name, [mu, sigma]]
    if _number(q, "q", name) <= 0:
        raise UserErrorException(f"{name}: q must be positive, got {q!r}")
    return [name, [mu, sigma, q]]


def uniform(min_value: float, max_value: float) -> list:
    return _bounded("uniform", min_value, max_value)


def quniform(min_value: float, max_value: float, q: float) -> list:
    """``round(uniform(min_value, max_value) / q) * q``."""
    return _bounded("quniform", min_value, max_value, q)


def loguniform(min_value: float, max_value: float) -> list:
    """``exp(uniform(min_value, max_value))``: the bounds are natural logarithms, as in v1."""
    return _bounded("loguniform", min_value, max_value)


def qloguniform(min_value: float, max_value: float, q: float) -> list:
    return _bounded("qloguniform", min_value, max_value, q)


def normal(mu: float, sigma: float) -> list:
    return _spread("normal", mu, sigma)


def qnormal(mu: float, sigma: float, q: float) -> list:
    return _spread("qnormal", mu, sigma, q)


def lognormal(mu: float, sigma: float) -> list:
    """``exp(normal(mu, sigma))``."""
    return _spread("lognormal", mu, sigma)


def qlognormal(mu: float, sigma: float, q: float) -> list:
    return _spread("qlognormal", mu, sigma, q)


def expression_kind(name: str, expression: Any, sampling: str) -> str:
    """The expression's name, after checking it is one v1 builds (``choice``, ``uniform``, ...)."""
    if (
        isinstance(expression, (list, tuple))
        and len(expression) == 2
        and expression[0] in EXPRESSIONS
        and isinstance(expression[1], (list, tuple))
    ):
        return str(expression[0])
    raise UserErrorException(
        f"{sampling}: parameter_space[{name!r}] must be a parameter expression such as "
        f"choice(...) or uniform(...), got {expression!r}"
    )


class HyperParameterSampling:
    """What the three methods share: a named space of expressions, checked once."""

    #: which expressions this method accepts (None: every one)
    ALLOWED: frozenset[str] | None = None
    method = "random"

    def __init__(self, parameter_space: dict, properties: dict | None = None):
        sampling = type(self).__name__
        if not isinstance(parameter_space, dict) or not parameter_space:
            raise UserErrorException(
                f"{sampling}: parameter_space must be a non-empty dict of name -> expression"
            )
        for name, expression in parameter_space.items():
            if not isinstance(name, str) or not name.strip("-"):
                raise UserErrorException(
                    f"{sampling}: parameter names must be non-empty strings, got {name!r}"
                )
            kind = expression_kind(name, expression, sampling)
            if self.ALLOWED is not None and kind not in self.ALLOWED:
                allowed = ", ".join(sorted(self.ALLOWED))
                raise UserErrorException(
                    f"{sampling}: parameter_space[{name!r}] is {kind}(...); {sampling} takes "
                    f"only {allowed}"
                )
        if properties is not None and not isinstance(properties, dict):
            raise UserErrorException(
                f"{sampling}: properties must be a dict, got {type(properties).__name__}"
            )
        self._parameter_space = {name: list(expr) for name, expr in parameter_space.items()}
        self._properties = dict(properties or {})

    @property
    def parameter_space(self) -> dict:
        return dict(self._parameter_space)

    @property
    def properties(self) -> dict:
        return dict(self._properties)

    def to_json(self) -> dict[str, Any]:
        """v1's serialized form (also what the compiler reads)."""
        return {
            "name": self.method.capitalize(),
            "parameter_space": self.parameter_space,
            "properties": self.properties,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._parameter_space!r})"


class RandomParameterSampling(HyperParameterSampling):
    """Values drawn at random from every expression. ``properties={"seed": N}`` fixes the draw;
    without it the seed comes from the definition, so a rerun proposes the same trials."""

    method = "random"


class GridParameterSampling(HyperParameterSampling):
    """Every combination of ``choice`` values, in order (v1 takes only ``choice`` here)."""

    ALLOWED = frozenset({"choice"})
    method = "grid"

    def __init__(self, parameter_space: dict, properties: dict | None = None):
        super().__init__(parameter_space, properties)


class BayesianParameterSampling(HyperParameterSampling):
    """Proposals informed by the finished trials' metric (Optuna's TPE sampler, at run time)."""

    ALLOWED = frozenset({"choice", "uniform", "quniform"})
    method = "bayesian"

    def __init__(self, parameter_space: dict, properties: dict | None = None):
        super().__init__(parameter_space, properties)
