"""``BayesianParameterSampling``'s proposals: Optuna's TPE sampler over the finished trials.

Each Bayesian trial asks for its values when it starts: the trials of this run that finished
(on the board, ``runtime/hyperdrive_board.py``) are told to a fresh in-memory Optuna study with
their best primary metric value, and the study's TPE sampler, seeded from the definition and the
trial's index, proposes the next point. With the same finished trials the proposal is the same,
so a rerun whose earlier trials were reused proposes (and reuses) the same later trials.
"""

from __future__ import annotations

from typing import Any


def _distribution(kind: str, args: list[Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if kind == "choice":
        return CategoricalDistribution(list(args[0]))
    if kind == "uniform":
        return FloatDistribution(float(args[0]), float(args[1]))
    if kind == "quniform":
        low, high, q = float(args[0]), float(args[1]), float(args[2])
        return FloatDistribution(low, low + ((high - low) // q) * q, step=q)
    raise ValueError(f"BayesianParameterSampling does not take {kind}(...)")


def startup_trials(total: int) -> int:
    """Random proposals before TPE models the results: a quarter of the sweep, 1 to 10 (Optuna's
    default of 10 would leave a small sweep all random)."""
    return min(10, max(1, total // 4))


def propose(
    space: dict[str, list],
    seed: int,
    index: int,
    finished: list[tuple[dict[str, Any], float]],
    maximize: bool,
    total: int = 20,
) -> dict[str, Any]:
    """The values trial ``index`` tries, given ``finished`` (values tried, best metric).

    The first ``startup_trials(total)`` proposals are random (TPE's start-up), the rest come
    from TPE's model of the finished trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = {name: _distribution(kind, args) for name, (kind, args) in space.items()}
    sampler = optuna.samplers.TPESampler(
        seed=(seed + index) % 2**32, n_startup_trials=startup_trials(total)
    )
    study = optuna.create_study(direction="maximize" if maximize else "minimize", sampler=sampler)
    for params, value in finished:
        known = {k: v for k, v in params.items() if k in distributions}
        if len(known) != len(distributions):
            continue
        try:
            study.add_trial(
                optuna.trial.create_trial(params=known, distributions=distributions, value=value)
            )
        except ValueError:
            continue  # a value outside today's space (the definition changed): not evidence
    trial = study.ask(distributions)
    proposed = {}
    for name, (kind, args) in space.items():
        value = trial.params[name]
        if kind == "quniform":
            value = round(round(value / args[2]) * args[2], 12)
        proposed[name] = value
    return proposed
