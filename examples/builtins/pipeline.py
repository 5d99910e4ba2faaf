"""Built-in modules, no code of our own: read -> clean -> split -> train -> score -> evaluate.

Every step is a ``ModuleStep`` on one of mlpipe's built-in modules, published into the workspace
(``examples/.mlpipe``) by ``install_builtin_modules`` when this file is loaded; installing is
idempotent, so compiling again (``mlpipe compile examples/builtins/pipeline.py -o dags``)
changes nothing. ``python pipeline.py`` writes a small CSV, uploads it and submits a run; a
second run reuses every step.
"""

from mlpipe_provider.sdk import (
    DataReference,
    Experiment,
    Module,
    ModuleStep,
    Pipeline,
    PipelineData,
    PipelineParameter,
    Workspace,
    install_builtin_modules,
)

ws = Workspace.from_config()
datastore = ws.get_default_datastore()
install_builtin_modules(ws)

customers = DataReference(
    datastore, data_reference_name="customers", path_on_datastore="builtins/customers.csv"
)
selected = PipelineData("selected", datastore=datastore)
cleaned = PipelineData("cleaned", datastore=datastore)
training = PipelineData("training", datastore=datastore)
testing = PipelineData("testing", datastore=datastore)
model = PipelineData("model", datastore=datastore)
scored = PipelineData("scored", datastore=datastore)
evaluation = PipelineData("evaluation", datastore=datastore)

estimator = PipelineParameter(name="estimator", default_value="RandomForestClassifier")

select = ModuleStep(
    module=Module.get(ws, name="Select Columns in Dataset"),
    name="select_columns",
    inputs_map={"dataset": customers},
    outputs_map={"results_dataset": selected},
    params={"columns": "age,income,visits,churned"},
)
clean = ModuleStep(
    module=Module.get(ws, name="Clean Missing Data"),
    name="clean_missing_data",
    inputs_map={"dataset": selected},
    outputs_map={"cleaned_dataset": cleaned},
    params={"cleaning_mode": "Replace with median"},
)
split = ModuleStep(
    module=Module.get(ws, name="Split Data"),
    name="split_data",
    inputs_map={"dataset": cleaned},
    outputs_map={"results_dataset1": training, "results_dataset2": testing},
    params={"fraction": 0.7, "random_seed": 42, "stratify_column": "churned"},
)
train = ModuleStep(
    module=Module.get(ws, name="Train Model"),
    name="train_model",
    inputs_map={"dataset": training},
    outputs_map={"trained_model": model},
    params={
        "label_column": "churned",
        "estimator": estimator,
        "estimator_params": '{"n_estimators": 25, "max_depth": 4, "random_state": 0}',
    },
)
score = ModuleStep(
    module=Module.get(ws, name="Score Model"),
    name="score_model",
    inputs_map={"trained_model": model, "dataset": testing},
    outputs_map={"scored_dataset": scored},
)
evaluate = ModuleStep(
    module=Module.get(ws, name="Evaluate Model"),
    name="evaluate_model",
    inputs_map={"scored_dataset": scored},
    outputs_map={"evaluation_results": evaluation},
)

builtins_pipeline = Pipeline(
    workspace=ws,
    steps=[evaluate],
    description="Churn model from the built-in modules: clean, split, train, score, evaluate.",
)


def write_customers(path: str) -> None:
    """A small synthetic table with a few missing values (deterministic, no numpy needed)."""
    rows = ["customer,age,income,visits,churned"]
    for i in range(200):
        age = "" if i % 37 == 5 else str(18 + (i * 7) % 60)
        income = "" if i % 41 == 3 else str(20000 + (i * 7919) % 80000)
        visits = (i * 13) % 30
        churned = int(visits < 8 and (i * 7919) % 80000 < 50000)
        churned ^= int(i % 23 == 0)  # some noise: no model gets every customer right
        rows.append(f"c{i:03d},{age},{income},{visits},{churned}")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")


def main():
    from pathlib import Path

    Path("data").mkdir(exist_ok=True)
    write_customers("data/customers.csv")
    datastore.upload("data", target_path="builtins", overwrite=True)
    run = Experiment(ws, "builtins-pipeline").submit(builtins_pipeline)
    run.wait_for_completion(show_output=True)
    print(run.find_step_run("evaluate_model")[0].get_metrics())


if __name__ == "__main__":
    main()
