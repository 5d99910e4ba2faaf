"""A published module in a pipeline: ``clean`` (a ModuleStep) -> ``word_counts`` (a script step).

The module ``clean_text`` is published from ``src/`` into the workspace (``examples/.mlpipe``),
which keeps a snapshot of the folder; the ``clean`` step runs that snapshot. Publishing is
idempotent, so compiling this file again (``mlpipe compile examples/module/pipeline.py -o dags``)
changes nothing; after editing ``src/``, bump ``VERSION`` to publish the change.
``python pipeline.py`` writes the input text, uploads it and submits a run.
"""

from mlpipe_provider.sdk import (
    DataReference,
    Experiment,
    InputPortDef,
    Module,
    ModuleStep,
    OutputPortDef,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    Workspace,
)

VERSION = "1"

ws = Workspace.from_config()
datastore = ws.get_default_datastore()

raw_port = InputPortDef(name="raw", default_datastore_mode="mount", label="Text to clean")
cleaned_port = OutputPortDef(
    name="cleaned", default_datastore_name=datastore.name, is_directory=True, label="Clean text"
)
module = Module.create(ws, name="clean_text", description="Normalise case and whitespace of text")
module.publish_python_script(
    "clean_text.py",
    "Lower-cases and collapses whitespace; writes text.txt and summary.json",
    inputs=[raw_port],
    outputs=[cleaned_port],
    params={"lowercase": True},
    version=VERSION,
    is_default=True,
    source_directory="src",
    arguments=["--raw", raw_port, "--cleaned", cleaned_port],
)

raw_text = DataReference(
    datastore, data_reference_name="raw_text", path_on_datastore="module/raw.txt"
)
cleaned = PipelineData("cleaned_text", datastore=datastore)
counts = PipelineData("counts", datastore=datastore)

clean = ModuleStep(
    module=module,  # the default version; pass version="1" to pin one
    name="clean",
    inputs_map={"raw": raw_text},
    outputs_map={"cleaned": cleaned},
)
word_counts = PythonScriptStep(
    name="word_counts",
    script_name="word_counts.py",
    arguments=["--cleaned", cleaned, "--counts", counts],
    inputs=[cleaned],
    outputs=[counts],
    source_directory="steps",
)

module_pipeline = Pipeline(
    workspace=ws,
    steps=[word_counts],
    description="Clean text with the published clean_text module, then count its words.",
)


def main():
    from pathlib import Path

    Path("data").mkdir(exist_ok=True)
    Path("data/raw.txt").write_text("The  quick brown fox\nJUMPS over   the lazy dog\n\nthe end\n")
    datastore.upload("data", target_path="module", overwrite=True)
    run = Experiment(ws, "module-pipeline").submit(module_pipeline)
    run.wait_for_completion(show_output=True)
    print(run.find_step_run("word_counts")[0].get_metrics())


if __name__ == "__main__":
    main()
