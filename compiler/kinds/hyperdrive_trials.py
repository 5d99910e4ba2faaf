"""Which trials a sweep runs, decided at compile time for random and grid sampling.

Fixing them here puts every trial's values in the DAG file as literals, where a reader (and the
Airflow UI's mapped task list) sees them, and makes each trial's fingerprint known before it
runs: a rerun of the same definition proposes the same trials and reuses every unchanged one.
Random draws are seeded from the parameter space (or ``properties={"seed": N}``), never from the
clock; the seed does not depend on ``max_total_runs``, so raising it keeps the first trials and
adds new ones. Bayesian trials depend on earlier results, so only their count is fixed here
(``runtime/hyperdrive_bayes.py`` proposes them).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from typing import Any

#: draws tried per trial before a random sweep of a small discrete space stops early
_DRAW_ATTEMPTS = 50


def definition_seed(space: dict[str, Any], properties: dict[str, Any]) -> int:
    """The random seed of a sweep: ``properties["seed"]``, else a digest of the space."""
    seed = properties.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return seed
    text = json.dumps(space, sort_keys=True, default=str)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _quantized(value: float, q: float) -> float:
    """``round(value / q) * q``, without the binary fraction tail (0.30000000000000004)."""
    step = round(value / q) * q
    return round(step, 12) if isinstance(step, float) else step


def draw(kind: str, args: list[Any], rng: random.Random) -> Any:
    """One value of expression ``kind(*args)``, as v1 defines each."""
    if kind == "choice":
        return rng.choice(list(args[0]))
    if kind == "randint":
        return rng.randrange(int(args[0]))
    if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        value = rng.uniform(args[0], args[1])
        if kind.endswith("loguniform"):
            value = math.exp(value)
    else:  # normal, qnormal, lognormal, qlognormal
        value = rng.gauss(args[0], args[1])
        if kind.endswith("lognormal"):
            value = math.exp(value)
    if kind.startswith("q"):
        return _quantized(value, args[2])
    return value


def _space_size(space: dict[str, list]) -> int | None:
    """How many distinct points a space has, None when any expression is continuous."""
    size = 1
    for kind, args in space.values():
        if kind == "choice":
            size *= len(args[0])
        elif kind == "randint":
            size *= int(args[0])
        else:
            return None
    return size


def random_trials(space: dict[str, list], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` distinct draws (fewer when a discrete space has fewer points)."""
    rng = random.Random(seed)
    size = _space_size(space)
    wanted = count if size is None else min(count, size)
    trials: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(trials) < wanted and attempts < wanted * _DRAW_ATTEMPTS:
        attempts += 1
        point = {name: draw(kind, args, rng) for name, (kind, args) in space.items()}
        key = json.dumps(point, sort_keys=True)
        if key not in seen:
            seen.add(key)
            trials.append(point)
    return trials


def grid_trials(space: dict[str, list], count: int) -> list[dict[str, Any]]:
    """Every combination of the choices, in the order given, the first ``count`` of them."""
    names = list(space)
    options = [list(space[name][1][0]) for name in names]
    combos = itertools.islice(itertools.product(*options), count)
    return [dict(zip(names, combo, strict=True)) for combo in combos]


def plan_trials(
    method: str, space: dict[str, list], count: int, properties: dict[str, Any]
) -> list[dict[str, Any]]:
    """The mapped trial descriptors: ``{"index": i, "hyperparameters": {...} | None}``."""
    if method == "grid":
        points: list[dict[str, Any] | None] = list(grid_trials(space, count))
    elif method == "random":
        points = list(random_trials(space, count, definition_seed(space, properties)))
    else:  # bayesian: proposed when each trial starts
        points = [None] * count
    return [{"index": index, "hyperparameters": point} for index, point in enumerate(points)]
