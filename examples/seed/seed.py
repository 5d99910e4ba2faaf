"""The Azure ML v1 seed program; only its imports changed (``azureml.*`` -> ``mlpipe_provider.sdk``).

Run it from this folder: ``python seed.py``. It generates a small text data set, uploads it to the
workspace's default datastore, and runs the one-step pipeline on the embedded Airflow.
"""

from pathlib import Path

from make_data import write_dataset

from mlpipe_provider.sdk import (
    DataReference,
    Datastore,
    Experiment,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    Workspace,
)


def build(ws):
    blob_store = Datastore(ws, "workspaceblobstore")
    compute_target = ws.compute_targets["STANDARD_NC6"]
    input_data = DataReference(
        datastore=Datastore(ws, blob_store),
        data_reference_name="test_data",
        path_on_datastore="20newsgroups/20news.pkl",
    )
    output_data = PipelineData("output_data", datastore=blob_store, output_name="output_data1")
    steps = [
        PythonScriptStep(
            script_name="train.py",
            arguments=["--input", input_data, "--output", output_data],
            inputs=[input_data],
            outputs=[output_data],
            compute_target=compute_target,
            source_directory="myfolder",
        )
    ]
    return Pipeline(workspace=ws, steps=steps)


def main():
    ws = Workspace.from_config()
    data_dir = Path("data")
    write_dataset(data_dir / "20news.pkl")
    ws.get_default_datastore().upload(str(data_dir), target_path="20newsgroups", overwrite=True)
    experiment = Experiment(ws, "MyExperiment")
    pipeline = build(ws)
    pipeline_run = experiment.submit(pipeline)
    pipeline_run.wait_for_completion()
    return pipeline_run


if __name__ == "__main__":
    main()
