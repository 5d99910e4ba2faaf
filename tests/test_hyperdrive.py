"""``HyperDriveStep``: sampling, early termination, the best trial, reuse, and a consumer step.

The sweeps run for real on the embedded Airflow (``dag.test()``): trials are mapped tasks that
run the example's training script (``examples/hyperdrive/src/train.py``) with short epochs.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from compiler.kinds.hyperdrive_trials import grid_trials, plan_trials, random_trials
from mlpipe_provider.errors import UserErrorException
from mlpipe_provider.runtime.hyperdrive_policy import stop_reason
from mlpipe_provider.sdk import (
    BanditPolicy,
    BayesianParameterSampling,
    GridParameterSampling,
    HyperDriveConfig,
    HyperDriveStep,
    HyperDriveStepRun,
    MedianStoppingPolicy,
    NoTerminationPolicy,
    Pipeline,
    PipelineData,
    PrimaryMetricGoal,
    PythonScriptStep,
    RandomParameterSampling,
    ScriptRunConfig,
    TrainingOutput,
    TruncationSelectionPolicy,
    choice,
    loguniform,
    normal,
    qlognormal,
    quniform,
    randint,
    uniform,
)

EXAMPLE_SRC = Path(__file__).resolve().parents[1] / "examples" / "hyperdrive" / "src"
SWEEP_TASKS = ("tune.trials", "tune.hyperdrive")


@pytest.fixture
def src(project):
    folder = project / "src"
    shutil.copytree(EXAMPLE_SRC, folder)
    return folder


def mapped_states(dag_run, task_id: str, what: str = "state") -> dict[int, str]:
    """``{map_index: state}`` (or ``note``) of a mapped task's instances in a run."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return {
            ti.map_index: str(getattr(ti, what))
            for ti in session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_run.dag_id,
                    TaskInstance.run_id == dag_run.run_id,
                    TaskInstance.task_id == task_id,
                )
            )
        }


def _sweep(
    ws,
    sampling,
    *,
    policy=None,
    total=12,
    concurrent=None,
    epochs=6,
    consumer=True,
    goal=PrimaryMetricGoal.MAXIMIZE,
):
    datastore = ws.get_default_datastore()
    metrics_data = PipelineData(
        "metrics_data", datastore=datastore, training_output=TrainingOutput(type="Metrics")
    )
    model_data = PipelineData(
        "model_data",
        datastore=datastore,
        training_output=TrainingOutput(type="Model", model_file="outputs/model.json"),
    )
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(
            source_directory="src",
            script="train.py",
            arguments=["--epochs", epochs, "--epoch-seconds", 0.1],
        ),
        hyperparameter_sampling=sampling,
        policy=policy,
        primary_metric_name="accuracy",
        primary_metric_goal=goal,
        max_total_runs=total,
        max_concurrent_runs=concurrent,
    )
    tune = HyperDriveStep(
        name="tune", hyperdrive_config=config, outputs=[model_data], metrics_output=metrics_data
    )
    steps = [tune]
    if consumer:
        steps.append(
            PythonScriptStep(
                name="evaluate",
                script_name="evaluate.py",
                arguments=["--model", model_data, "--metrics", metrics_data],
                inputs=[model_data, metrics_data],
                source_directory="src",
            )
        )
    return Pipeline(ws, steps)


class _StepRun:
    """What ``HyperDriveStepRun`` reads from a pipeline's step run, for a ``dag.test()`` run."""

    name = "tune"

    def __init__(self, record):
        self._record = record
        self.id = record["step_run_id"]

    def _refresh(self):
        pass


# --- the space and its sampling ---------------------------------------------------------------


def test_expressions_are_v1_lists():
    assert choice(1, 2, 3) == ["choice", [[1, 2, 3]]]
    assert choice([0.1, 0.2]) == ["choice", [[0.1, 0.2]]]
    assert choice(range(3)) == ["choice", [[0, 1, 2]]]
    assert uniform(0.5, 1) == ["uniform", [0.5, 1]]
    assert quniform(1, 10, 2) == ["quniform", [1, 10, 2]]
    assert randint(5) == ["randint", [5]]


def test_random_trials_are_seeded_by_the_definition_and_prefix_stable():
    space = {
        "lr": loguniform(-6, -1),
        "--units": choice(16, 32, 64),
        "dropout": quniform(0, 0.5, 0.1),
        "momentum": normal(0.9, 0.02),
        "scale": qlognormal(0, 1, 0.5),
        "seed": randint(100),
    }
    first = random_trials(space, 12, 7)
    assert first == random_trials(space, 12, 7)  # a rerun proposes the same trials
    assert random_trials(space, 20, 7)[:12] == first  # more trials keep the first ones
    assert random_trials(space, 12, 8) != first
    for point in first:
        assert 0.0024 < point["lr"] < 0.37
        assert point["--units"] in (16, 32, 64)
        assert point["dropout"] in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
        assert 0 <= point["seed"] < 100
        assert round(point["scale"] / 0.5, 9) == round(point["scale"] / 0.5)
    # the seed comes from the space (or properties["seed"]), so the DAG file is the same each time
    sampling = RandomParameterSampling(space)
    a = plan_trials("random", sampling.parameter_space, 5, {})
    assert a == plan_trials("random", sampling.parameter_space, 5, {})
    assert a != plan_trials("random", sampling.parameter_space, 5, {"seed": 1})


def test_a_small_discrete_random_space_gives_distinct_trials_and_no_more():
    trials = random_trials({"a": choice(1, 2), "b": choice("x", "y")}, 10, 3)
    assert len(trials) == 4
    assert len({json.dumps(t, sort_keys=True) for t in trials}) == 4


def test_grid_enumerates_every_combination_in_order():
    space = GridParameterSampling({"a": choice(1, 2), "--b": choice("x", "y", "z")}).parameter_space
    assert grid_trials(space, 100) == [
        {"a": 1, "--b": "x"},
        {"a": 1, "--b": "y"},
        {"a": 1, "--b": "z"},
        {"a": 2, "--b": "x"},
        {"a": 2, "--b": "y"},
        {"a": 2, "--b": "z"},
    ]
    assert len(grid_trials(space, 4)) == 4


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: GridParameterSampling({"lr": uniform(0, 1)}),
            r"GridParameterSampling: parameter_space\['lr'\] is uniform\(\.\.\.\); .* only choice",
        ),
        (
            lambda: BayesianParameterSampling({"lr": loguniform(-3, 0)}),
            r"parameter_space\['lr'\] is loguniform",
        ),
        (
            lambda: RandomParameterSampling({"lr": [0.1, 0.2]}),
            r"parameter_space\['lr'\] must be a parameter expression",
        ),
        (lambda: uniform(1, 1), "uniform: min_value must be below max_value"),
        (lambda: BanditPolicy(slack_factor=0.1, slack_amount=0.2), "exactly one of slack"),
        (lambda: BanditPolicy(evaluation_interval=0, slack_factor=0.1), "evaluation_interval"),
        (lambda: TruncationSelectionPolicy(truncation_percentage=100), "truncation_percentage"),
    ],
)
def test_bad_spaces_and_policies_name_the_field(make, message):
    with pytest.raises(UserErrorException, match=message):
        make()


def test_config_errors_name_the_field(project):
    (project / "src").mkdir()
    src = ScriptRunConfig(source_directory="src", script="train.py")
    sampling = RandomParameterSampling({"lr": uniform(0, 1)})
    common = dict(hyperparameter_sampling=sampling, primary_metric_name="acc")
    with pytest.raises(UserErrorException, match="max_total_runs must be an integer from 1"):
        HyperDriveConfig(run_config=src, primary_metric_goal="MAXIMIZE", max_total_runs=0, **common)
    with pytest.raises(UserErrorException, match="primary_metric_goal must be"):
        HyperDriveConfig(run_config=src, primary_metric_goal="up", max_total_runs=3, **common)
    with pytest.raises(UserErrorException, match="exactly one of run_config"):
        HyperDriveConfig(primary_metric_goal="MAXIMIZE", max_total_runs=3, **common)
    with pytest.raises(UserErrorException, match="takes no early termination policy"):
        HyperDriveConfig(
            run_config=src,
            hyperparameter_sampling=BayesianParameterSampling({"lr": uniform(0, 1)}),
            primary_metric_name="acc",
            primary_metric_goal=PrimaryMetricGoal.MINIMIZE,
            max_total_runs=3,
            policy=MedianStoppingPolicy(),
        )


def test_a_missing_script_is_a_compile_error_naming_the_step_and_field(ws, project):
    (project / "src").mkdir()
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory="src", script="nope.py"),
        hyperparameter_sampling=GridParameterSampling({"a": choice(1, 2)}),
        primary_metric_name="acc",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=2,
    )
    (message,) = Pipeline(ws, [HyperDriveStep(name="tune", hyperdrive_config=config)]).validate()
    assert "step 'tune', field 'hyperdrive_config.run_config.script'" in message
    assert "nope.py" in message


# --- the policies' rules ----------------------------------------------------------------------


def test_policy_rules_at_an_interval():
    bandit = BanditPolicy(slack_factor=0.1, delay_evaluation=2).to_spec()
    assert stop_reason(bandit, True, [0.5], [[0.9]]) is None  # before delay_evaluation
    assert stop_reason(bandit, True, [0.5, 0.83], [[0.8, 0.9]]) is None  # 0.83 >= 0.9 / 1.1
    assert "BanditPolicy" in stop_reason(bandit, True, [0.5, 0.7], [[0.8, 0.9]])
    # the trial's best value so far counts, at every multiple of evaluation_interval >= delay
    assert stop_reason(bandit, True, [0.85, 0.7], [[0.8, 0.9]]) is None
    every_2 = BanditPolicy(evaluation_interval=2, slack_factor=0.1).to_spec()
    assert stop_reason(every_2, True, [0.1], [[0.9]]) is None
    assert stop_reason(every_2, True, [0.1, 0.1], [[0.9, 0.9]]) is not None
    amount = BanditPolicy(slack_amount=0.05).to_spec()
    assert stop_reason(amount, False, [0.3], [[0.2]]) is not None  # minimize: 0.3 > 0.2 + 0.05
    assert stop_reason(amount, False, [0.24], [[0.2]]) is None
    median = MedianStoppingPolicy().to_spec()
    assert stop_reason(median, True, [0.1, 0.2], [[0.5, 0.6], [0.4, 0.5], [0.0, 0.1]]) is not None
    assert stop_reason(median, True, [0.5, 0.6], [[0.5, 0.6], [0.4, 0.5]]) is None
    truncation = TruncationSelectionPolicy(truncation_percentage=50).to_spec()
    assert stop_reason(truncation, True, [0.1], [[0.5], [0.4], [0.3]]) is not None
    assert stop_reason(truncation, True, [0.45], [[0.5], [0.4], [0.3]]) is None
    assert stop_reason(NoTerminationPolicy().to_spec(), True, [0.0], [[1.0]]) is None


# --- running sweeps ---------------------------------------------------------------------------


def test_a_12_trial_bandit_sweep_stops_trials_early_picks_the_best_and_is_reused(
    ws, project, src, run_dag
):
    """The example's sweep, small: 12 random trials under a BanditPolicy. At least one trial is
    canceled early (fewer accuracy values than epochs, status Canceled, still listed), the best
    trial is the one with the highest accuracy, the consumer reads its model and every trial's
    metrics, and a second run reuses every trial and the step."""
    sampling = RandomParameterSampling(
        {"--learning_rate": loguniform(-9, -1), "--batch_size": choice(16, 32, 64)}
    )
    policy = BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=2)
    pipeline = _sweep(ws, sampling, policy=policy, total=12, concurrent=4)
    dag_run, records = run_dag(pipeline, dag_id="hd_bandit")
    assert mapped_states(dag_run, "tune.trials") == {i: "success" for i in range(12)}
    state, record = records["tune.hyperdrive"]
    assert state == "success", records
    hd = HyperDriveStepRun(_StepRun(record))
    trials = hd.get_children()
    assert len(trials) == 12
    canceled = [t for t in trials if t.get_status() == "Canceled"]
    completed = [t for t in trials if t.get_status() == "Completed"]
    assert canceled, [t.get_metrics().get("accuracy") for t in trials]
    assert len(canceled) + len(completed) == 12
    for trial in canceled:
        assert len(trial.get_metrics()["accuracy"]) < 6  # stopped before its last epoch
    best = hd.get_best_run_by_primary_metric()
    finals = {t.id: max(t.get_metrics()["accuracy"]) for t in trials}
    assert best.id == max(finals, key=finals.get)
    assert best.get_status() == "Completed"
    rows = hd.get_children_sorted_by_primary_metric(top=3)
    assert [r["run_id"] for r in rows][0] == best.id
    assert [r["best_primary_metric"] for r in rows] == sorted(
        [r["best_primary_metric"] for r in rows], reverse=True
    )
    params = hd.get_hyperparameters()[best.id]
    assert set(params) == {"--learning_rate", "--batch_size"}
    assert best.get_details()["runDefinition"]["arguments"][-4:] == [
        "--learning_rate",
        params["--learning_rate"],
        "--batch_size",
        params["--batch_size"],
    ]
    # the consumer read the best model and v1's metrics JSON
    state, consumer = records["evaluate"]
    assert state == "success"
    assert consumer["metrics"]["trials"] == 12
    assert consumer["metrics"]["model_accuracy"] == pytest.approx(finals[best.id])
    assert consumer["metrics"]["best_learning_rate"] == pytest.approx(params["--learning_rate"])
    folder = ws._dir / "datastores" / "workspaceblobstore"
    metrics_file = folder / record["outputs"]["metrics_data"]["path"]
    assert json.loads(metrics_file.read_text()) == {
        t.id: {k: v if isinstance(v, list) else [v] for k, v in t.get_metrics().items()}
        for t in trials
    }

    assert not any((ws._dir / "hyperdrive").iterdir())  # the trials' board is gone once ranked

    again, records = run_dag(pipeline, dag_id="hd_bandit")
    assert mapped_states(again, "tune.trials") == {i: "skipped" for i in range(12)}
    deadline = time.monotonic() + 10  # the listener's thread writes them after the run ends
    while True:  # every trial instance has its own note naming the trial run it reused
        notes = mapped_states(again, "tune.trials", "note")
        if all(f"reused step run {t.id}" in notes[i] for i, t in enumerate(trials)):
            break
        assert time.monotonic() < deadline, notes
        time.sleep(0.2)
    state, reused = records["tune.hyperdrive"]
    assert state == "skipped"
    assert reused["reused_run_id"] == record["step_run_id"]
    assert HyperDriveStepRun(_StepRun(reused)).get_best_run_by_primary_metric().id == best.id
    assert records["evaluate"][0] == "skipped"


def test_bayesian_proposals_are_seeded_and_learn_from_finished_trials():
    from mlpipe_provider.runtime.hyperdrive_bayes import propose

    space = BayesianParameterSampling(
        {"lr": uniform(0.0, 1.0), "units": choice(8, 16, 32), "drop": quniform(0, 0.5, 0.1)}
    ).parameter_space
    first = propose(space, 5, 0, [], True, total=8)
    assert first == propose(space, 5, 0, [], True, total=8)  # same evidence, same proposal
    assert 0 <= first["lr"] <= 1 and first["units"] in (8, 16, 32)
    assert round(first["drop"] * 10, 9) == round(first["drop"] * 10)
    low = [({"lr": x / 10, "units": 8, "drop": 0.1}, x / 10) for x in range(6)]
    high = [({"lr": x / 10, "units": 8, "drop": 0.1}, 1 - x / 10) for x in range(6)]
    assert propose(space, 5, 6, low, True, total=8) != propose(space, 5, 6, high, True, total=8)


def test_a_bayesian_sweep_submitted_as_in_v1(ws, project, src):
    """``Experiment.submit`` on the embedded Airflow, then v1's ``HyperDriveStepRun`` calls on
    the step run ``find_step_run`` returns: each trial's values were proposed when it started
    (Optuna), reached the script as arguments, and the trials are children of the step, not
    steps of the pipeline."""
    from mlpipe_provider.sdk import Experiment

    sampling = BayesianParameterSampling(
        {"--learning_rate": uniform(0.001, 0.1), "--batch_size": choice(16, 64)}
    )
    pipeline = _sweep(
        ws, sampling, total=4, concurrent=1, epochs=3, consumer=False, goal="MAXIMIZE"
    )
    run = Experiment(ws, "hd-bayes").submit(pipeline)
    run.wait_for_completion(show_output=False)
    assert run.get_status() == "Finished"
    assert [s.name for s in run.get_steps()] == ["tune"]
    hd = HyperDriveStepRun(step_run=run.find_step_run("tune")[0])
    trials = hd.get_children()
    assert [t.get_status() for t in trials] == ["Completed"] * 4
    for trial in trials:
        values = trial.get_hyperparameters()
        assert 0.001 <= values["--learning_rate"] <= 0.1
        assert values["--batch_size"] in (16, 64)
        # the script logged what it was given
        assert trial.get_metrics()["learning_rate"] == pytest.approx(values["--learning_rate"])
        assert trial.get_metrics()["batch_size"] == values["--batch_size"]
    best = hd.get_best_run_by_primary_metric()
    assert best.id == hd.get_children_sorted_by_primary_metric()[0]["run_id"]
    assert best.get_metrics()["accuracy"][-1] == max(
        t.get_metrics()["accuracy"][-1] for t in trials
    )


def test_the_dag_maps_the_trials_in_the_steps_group_and_compiles_byte_identical(
    ws, project, src, tmp_path
):
    """The trials are one mapped task (every trial's values a literal in the file, bounded by
    max_concurrent_runs) upstream of the step's operator, in a TaskGroup named after the step;
    a downstream step waits for the step's operator."""
    from airflow.dag_processing.dagbag import DagBag

    from compiler.compile import compile_pipeline

    sampling = GridParameterSampling(
        {"--learning_rate": choice(0.01, 0.1), "--batch_size": choice(16, 64)}
    )
    pipeline = _sweep(ws, sampling, total=3, concurrent=2)
    first = compile_pipeline(pipeline, "hd_shape", tmp_path / "a")
    first.write()
    again = compile_pipeline(pipeline, "hd_shape", tmp_path / "b")
    again.write()
    assert first.path.read_bytes() == again.path.read_bytes()
    text = first.path.read_text()
    assert "HyperDriveTrialOperator.partial(" in text and ").expand(" in text
    bag = DagBag(dag_folder=str(first.path))
    assert not bag.import_errors, bag.import_errors
    (dag,) = bag.dags.values()
    trials = dag.get_task("tune.trials")
    assert trials.max_active_tis_per_dagrun == 2
    assert [t["hyperparameters"] for t in trials.expand_input.value["trial"]] == [
        {"--learning_rate": 0.01, "--batch_size": 16},
        {"--learning_rate": 0.01, "--batch_size": 64},
        {"--learning_rate": 0.1, "--batch_size": 16},
    ]
    assert dag.get_task("tune.hyperdrive").upstream_task_ids == {"tune.trials"}
    assert dag.get_task("tune.trials").upstream_task_ids == {"mlpipe.plan"}
    assert dag.get_task("evaluate").upstream_task_ids == {"tune.hyperdrive"}


def test_trials_on_a_gpu_target_take_its_pool(ws, project, src):
    from compiler.compile import compile_pipeline

    gpu = ws.compute_targets["STANDARD_NC12"]
    config = HyperDriveConfig(
        run_config=ScriptRunConfig(source_directory="src", script="train.py", compute_target=gpu),
        hyperparameter_sampling=GridParameterSampling({"--learning_rate": choice(0.01, 0.1)}),
        primary_metric_name="accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=2,
    )
    compiled = compile_pipeline(
        Pipeline(ws, [HyperDriveStep(name="tune", hyperdrive_config=config)]),
        "hd_gpu",
        project / "dags",
    )
    trials, step = compiled.text.split("HyperDriveStepOperator(")[-2:]
    assert f"pool={gpu.name!r}," in trials and f"queue={gpu.name!r}," in trials
    assert "pool_slots=1," in trials
    assert "max_active_tis_per_dagrun" not in trials  # max_concurrent_runs=None: no limit


def test_changing_one_value_of_the_space_reruns_only_the_trials_it_changes(
    ws, project, src, run_dag
):
    """Grid trials [0.01, 0.1] then [0.01, 0.05]: the first trial is reused (its values, script
    and inputs are unchanged), the second runs, and the step ranks them again."""

    def sweep(second):
        sampling = GridParameterSampling({"--learning_rate": choice(0.01, second)})
        return _sweep(ws, sampling, total=2, epochs=2, consumer=False)

    _, first = run_dag(sweep(0.1), dag_id="hd_partial")
    assert first["tune.hyperdrive"][0] == "success"
    again, records = run_dag(sweep(0.05), dag_id="hd_partial")
    assert mapped_states(again, "tune.trials") == {0: "skipped", 1: "success"}
    state, record = records["tune.hyperdrive"]
    assert state == "success"
    trials = HyperDriveStepRun(_StepRun(record)).get_children()
    assert [t.get_hyperparameters()["--learning_rate"] for t in trials] == [0.01, 0.05]
    assert [t.get_details()["properties"]["reused"] for t in trials] == [True, False]
    before = HyperDriveStepRun(_StepRun(first["tune.hyperdrive"][1])).get_children()
    assert trials[0].id == before[0].id  # the reused trial keeps its run id and metrics
    assert trials[0].get_metrics() == before[0].get_metrics()


def test_an_estimator_sweep_compiles_with_its_script_params_before_the_trials_values(
    ws, project, src
):
    """v1's older form: ``HyperDriveConfig(estimator=...)``; the estimator's ``script_params``
    and the step's ``estimator_entry_script_arguments`` come first, the trial's values last."""
    from compiler.compile import compile_pipeline
    from mlpipe_provider.sdk import Estimator

    estimator = Estimator(
        source_directory="src",
        entry_script="train.py",
        script_params={"--epochs": 3},
        compute_target="STANDARD_D2_V2",
    )
    config = HyperDriveConfig(
        estimator=estimator,
        hyperparameter_sampling=GridParameterSampling({"learning_rate": choice(0.01)}),
        primary_metric_name="accuracy",
        primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
        max_total_runs=1,
    )
    step = HyperDriveStep(
        name="tune",
        hyperdrive_config=config,
        estimator_entry_script_arguments=["--epoch-seconds", 0.01],
    )
    compiled = compile_pipeline(Pipeline(ws, [step]), "hd_estimator", project / "dags")
    assert "arguments=['--epochs', 3, '--epoch-seconds', 0.01]," in compiled.text
    assert "'hyperparameters': {'learning_rate': 0.01}" in compiled.text
    from mlpipe_provider.runtime.hyperdrive_trial import trial_arguments

    assert trial_arguments(["--epochs", 3], {"learning_rate": 0.01, "--units": 8}) == [
        "--epochs",
        3,
        "--learning_rate",
        0.01,
        "--units",
        8,
    ]
