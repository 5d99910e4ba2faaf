# Publish a pipeline and run the published pipeline. Microsoft's sample POSTs to the published
# pipeline's REST endpoint with an AAD token; v1 also offered the Python path used here,
# published_pipeline.submit(...), which needs no token (REST submission is issue 15).

import os

import azureml.core
from azureml.core import Datastore, Experiment, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.data.data_reference import DataReference
from azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter, PublishedPipeline
from azureml.pipeline.steps import PythonScriptStep
from azureml.widgets import RunDetails

print("SDK version:", azureml.core.VERSION)

ws = Workspace.from_config()
def_blob_store = Datastore(ws, "workspaceblobstore")

os.makedirs("words", exist_ok=True)
with open("words/words.txt", "w") as f:
    f.write("alpha beta gamma\nbeta gamma\ngamma\n")
def_blob_store.upload_files(["words/words.txt"], target_path="publish", overwrite=True)

try:
    cpu_cluster = ComputeTarget(workspace=ws, name="cpu-cluster")
except ComputeTargetException:
    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=2)
    cpu_cluster = ComputeTarget.create(ws, "cpu-cluster", config)
    cpu_cluster.wait_for_completion(show_output=True)

words = DataReference(
    datastore=def_blob_store, data_reference_name="words", path_on_datastore="publish/words.txt"
)
counts = PipelineData("counts", datastore=def_blob_store)
top_n = PipelineParameter(name="top_n", default_value=1)

count_step = PythonScriptStep(
    name="count_words",
    script_name="count.py",
    arguments=["--input", words, "--output", counts],
    inputs=[words],
    outputs=[counts],
    compute_target=cpu_cluster,
    source_directory="extract_src",
)
top_step = PythonScriptStep(
    name="top_words",
    script_name="top.py",
    arguments=["--counts", counts, "--top", top_n],
    inputs=[counts],
    compute_target=cpu_cluster,
    source_directory="train_src",
)

pipeline1 = Pipeline(workspace=ws, steps=[top_step])
pipeline_run1 = Experiment(ws, "Pipeline_publish").submit(pipeline1)
RunDetails(pipeline_run1).show()
pipeline_run1.wait_for_completion()

# publish from the finished run, as the sample does
published_pipeline1 = pipeline_run1.publish_pipeline(
    name="Published_Word_Counts", description="count words, keep the top ones", version="1.0"
)
print("Published pipeline id:", published_pipeline1.id)
print("endpoint:", published_pipeline1.endpoint)

# v1 would POST {"ExperimentName": ..., "ParameterAssignments": {"top_n": 2}} to the endpoint
published = PublishedPipeline.get(ws, id=published_pipeline1.id)
published_run = published.submit(
    ws, experiment_name="Pipeline_publish_rest", pipeline_parameters={"top_n": 2}
)
published_run.wait_for_completion(show_output=True)

for published_pipeline in PublishedPipeline.list(ws):
    print("listed:", published_pipeline.name, published_pipeline.version)
