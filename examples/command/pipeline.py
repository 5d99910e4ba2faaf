"""CommandStep + ScriptRunConfig: v1's post-2021 way to write a pipeline step.

``count`` is a CommandStep whose command is a list mixing text (split into words, never run
through a shell) with data and a PipelineParameter (each one whole argument). ``train`` hands a
ScriptRunConfig to a CommandStep, as v1's samples do: its command, source folder, compute target,
environment variables and a PyTorchConfiguration (two ranked processes) all come from the config.
"""

from mlpipe_provider.sdk import (
    CommandStep,
    DataReference,
    Environment,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PyTorchConfiguration,
    ScriptRunConfig,
    Workspace,
)

ws = Workspace.from_config()
cpu = ws.compute_targets["cpu-cluster"]
datastore = ws.get_default_datastore()
corpus = DataReference(datastore, data_reference_name="corpus", path_on_datastore="corpus")
counts = PipelineData("counts", datastore=datastore)
model = PipelineData("model", datastore=datastore)
min_length = PipelineParameter("min_length", 3)

count = CommandStep(
    name="count",
    command=["python count.py --corpus", corpus, "--min-length", min_length, "--out", counts],
    inputs=[corpus],
    outputs=[counts],
    compute_target=cpu,
    source_directory="src",
)

env = Environment("command-example")
env.environment_variables = {"TOP_WORDS": "5"}
train_config = ScriptRunConfig(
    source_directory="src",
    command=["python train.py --counts", counts, "--model", model],
    compute_target=cpu,
    environment=env,
    distributed_job_config=PyTorchConfiguration(process_count=2),
)
train = CommandStep(name="train", runconfig=train_config, outputs=[model])

command_pipeline = Pipeline(
    workspace=ws,
    steps=[train],
    description="CommandStep + ScriptRunConfig: word counts, then a two-process 'training'.",
)

TEXT = """\
the quick brown fox jumps over the lazy dog
a pipeline step is a command and the command runs without a shell
reuse makes the second run of an unchanged pipeline cost almost nothing
"""


def main():
    from pathlib import Path

    Path("data").mkdir(exist_ok=True)
    Path("data/lines.txt").write_text(TEXT)
    datastore.upload("data", target_path="corpus", overwrite=True)
    run = Experiment(ws, "command-example").submit(command_pipeline)
    run.wait_for_completion(show_output=True)
    print(run.find_step_run("train")[0].get_metrics())


if __name__ == "__main__":
    main()
