"""HyperDriveStep: a 12-trial random sweep with a BanditPolicy, then a step that uses the best model.

Written as v1's HyperDrive-in-a-pipeline samples write it: a ScriptRunConfig for one trial, a
parameter space, an early termination policy and a primary metric in a HyperDriveConfig; the
step's outputs are PipelineData with a TrainingOutput (the best trial's model file, and every
trial's metrics), which the next step reads like any other data.
"""

from mlpipe_provider.sdk import (
    BanditPolicy,
    Experiment,
    HyperDriveConfig,
    HyperDriveStep,
    HyperDriveStepRun,
    Pipeline,
    PipelineData,
    PrimaryMetricGoal,
    PythonScriptStep,
    RandomParameterSampling,
    ScriptRunConfig,
    TrainingOutput,
    Workspace,
    choice,
    loguniform,
)

ws = Workspace.from_config()
cpu = ws.compute_targets["cpu-cluster"]
datastore = ws.get_default_datastore()

metrics_data = PipelineData(
    "metrics_data", datastore=datastore, training_output=TrainingOutput(type="Metrics")
)
model_data = PipelineData(
    "model_data",
    datastore=datastore,
    training_output=TrainingOutput(type="Model", model_file="outputs/model.json"),
)

src = ScriptRunConfig(
    source_directory="src",
    script="train.py",
    arguments=["--epochs", 8],
    compute_target=cpu,
)
param_sampling = RandomParameterSampling(
    {
        "--learning_rate": loguniform(-9, -1),
        "--batch_size": choice(16, 32, 64),
    }
)
early_termination_policy = BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=2)
hd_config = HyperDriveConfig(
    run_config=src,
    hyperparameter_sampling=param_sampling,
    policy=early_termination_policy,
    primary_metric_name="accuracy",
    primary_metric_goal=PrimaryMetricGoal.MAXIMIZE,
    max_total_runs=12,
    max_concurrent_runs=4,
)

tune = HyperDriveStep(
    name="tune",
    hyperdrive_config=hd_config,
    outputs=[model_data],
    metrics_output=metrics_data,
)
evaluate = PythonScriptStep(
    name="evaluate",
    script_name="evaluate.py",
    arguments=["--model", model_data, "--metrics", metrics_data],
    inputs=[model_data, metrics_data],
    compute_target=cpu,
    source_directory="src",
)

hyperdrive_pipeline = Pipeline(
    workspace=ws,
    steps=[evaluate],
    description="HyperDriveStep: a 12-trial sweep with early termination, then the best model.",
)


def main():
    run = Experiment(ws, "hyperdrive-example").submit(hyperdrive_pipeline)
    run.wait_for_completion(show_output=True)
    hd_step_run = HyperDriveStepRun(step_run=run.find_step_run("tune")[0])
    best_run = hd_step_run.get_best_run_by_primary_metric()
    print("best trial:", best_run.id, best_run.get_metrics()["accuracy"])
    for child in hd_step_run.get_children_sorted_by_primary_metric(top=3):
        print(child)


if __name__ == "__main__":
    main()
