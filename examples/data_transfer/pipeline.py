"""Archive a folder of reports to a second datastore, then summarise the archived copy.

An Azure ML v1 ``DataTransferStep`` program with only its imports changed. ``mlpipe compile
examples/data_transfer/pipeline.py -o dags`` finds the module-level ``data_transfer`` pipeline and
writes ``dags/data_transfer.py``; ``python pipeline.py`` writes the reports, uploads them and
submits a run (the ``__main__`` guard keeps compiling from submitting anything).

The copy needs no Data Factory: mlpipe copies through fsspec inside the Airflow worker, streamed
and verified by digest. A second run with the same reports reuses the transfer; changing one
report's bytes transfers again.
"""

from mlpipe_provider.sdk import (
    ComputeTarget,
    ComputeTargetException,
    DataFactoryCompute,
    DataReference,
    Datastore,
    DataTransferStep,
    Experiment,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    Workspace,
)

ws = Workspace.from_config()
blob_store = ws.get_default_datastore()
# A second local datastore, relative to the workspace folder (committed in .mlpipe/config.json).
if "archive" in ws.datastores:
    archive = Datastore(ws, "archive")
else:
    archive = Datastore.register_local(ws, "archive", "datastores/archive")

try:
    data_factory = DataFactoryCompute(ws, "adf-compute")
except ComputeTargetException:
    data_factory = ComputeTarget.create(
        ws, "adf-compute", DataFactoryCompute.provisioning_configuration()
    )

reports = DataReference(blob_store, data_reference_name="reports", path_on_datastore="reports/2024")
archived_reports = DataReference(
    archive, data_reference_name="archived_reports", path_on_datastore="reports/2024"
)
transfer_step = DataTransferStep(
    name="archive_reports",
    source_data_reference=reports,
    destination_data_reference=archived_reports,
    compute_target=data_factory,
    source_reference_type="directory",
    destination_reference_type="directory",
)

summary = PipelineData("summary", datastore=blob_store)
summarize_step = PythonScriptStep(
    name="summarize",
    script_name="summarize.py",
    arguments=["--reports", transfer_step.get_output(), "--summary", summary],
    inputs=[transfer_step.get_output()],
    outputs=[summary],
    compute_target="cpu-cluster",
    source_directory="src",
)

data_transfer = Pipeline(
    workspace=ws,
    steps=[summarize_step],
    description="Copy the reports to the archive datastore, then summarise the archived copy.",
)


def write_reports(folder: str = "data/reports") -> None:
    """Three small CSV reports; rewritten only when their content would change."""
    from pathlib import Path

    for month in (1, 2, 3):
        path = Path(folder) / f"2024-{month:02d}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = ["region,sales"] + [f"region-{r},{(month * 37 + r * 11) % 100}" for r in range(5)]
        text = "\n".join(rows) + "\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def main():
    write_reports()
    blob_store.upload("data/reports", target_path="reports/2024", overwrite=True)
    run = Experiment(ws, "data-transfer").submit(data_transfer)
    run.wait_for_completion(show_output=True)
    print(run.find_step_run("summarize")[0].get_metrics())


if __name__ == "__main__":
    main()
