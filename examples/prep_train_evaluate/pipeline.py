"""prep -> train -> evaluate, handing data over with PipelineData, as an Azure ML v1 program.

``mlpipe compile examples/prep_train_evaluate/pipeline.py -o dags`` finds the module-level
``prep_train_evaluate`` pipeline and writes ``dags/prep_train_evaluate.py``. ``python pipeline.py``
generates the data, uploads it and submits a run (the ``__main__`` guard keeps compiling from
submitting anything).
"""

from mlpipe_provider.sdk import (
    DataReference,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    RunConfiguration,
    Workspace,
)

ws = Workspace.from_config()
datastore = ws.get_default_datastore()
cpu = ws.compute_targets["cpu-cluster"]
gpu = ws.compute_targets["gpu-cluster"]

raw_data = DataReference(
    datastore, data_reference_name="raw_data", path_on_datastore="iris/iris.csv"
)
prepared = PipelineData("prepared", datastore=datastore)
model = PipelineData("model", datastore=datastore)
report = PipelineData("report", datastore=datastore)

test_fraction = PipelineParameter("test_fraction", 0.25)
learning_rate = PipelineParameter("learning_rate", 0.1)
epochs = PipelineParameter("epochs", 200)

train_config = RunConfiguration()
train_config.environment.environment_variables = {"TRAIN_SEED": "7"}

prep = PythonScriptStep(
    name="prep",
    script_name="prep.py",
    arguments=["--raw", raw_data, "--out", prepared, "--test-fraction", test_fraction],
    inputs=[raw_data],
    outputs=[prepared],
    compute_target=cpu,
    source_directory="src",
)
train = PythonScriptStep(
    name="train",
    script_name="train.py",
    arguments=[
        "--data",
        prepared,
        "--model",
        model,
        "--learning-rate",
        learning_rate,
        "--epochs",
        epochs,
    ],
    inputs=[prepared],
    outputs=[model],
    compute_target=gpu,
    runconfig=train_config,
    source_directory="src",
)
evaluate = PythonScriptStep(
    name="evaluate",
    script_name="evaluate.py",
    arguments=["--data", prepared, "--model", model, "--report", report],
    inputs=[prepared, model],
    outputs=[report],
    compute_target=cpu,
    source_directory="src",
)

prep_train_evaluate = Pipeline(
    workspace=ws,
    steps=[evaluate],
    description="Prepare the iris data, train a softmax classifier, evaluate it on held-out rows.",
)


def main():
    from make_data import write_iris

    write_iris("data/iris.csv")
    datastore.upload("data", target_path="iris", overwrite=True)
    run = Experiment(ws, "prep-train-evaluate").submit(prep_train_evaluate)
    run.wait_for_completion(show_output=True)
    print(run.find_step_run("evaluate")[0].get_metrics())


if __name__ == "__main__":
    main()
