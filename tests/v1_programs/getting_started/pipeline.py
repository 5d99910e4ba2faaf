# Getting started with Azure ML pipelines: two PythonScriptSteps, a DataReference input and a
# PipelineData hand-over, submitted as an experiment and followed to completion.
# (Written in the style of Microsoft's intro notebooks; cells flattened into one script.)

import os

import azureml.core
from azureml.core import Datastore, Experiment, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.data.data_reference import DataReference
from azureml.pipeline.core import Pipeline, PipelineData
from azureml.pipeline.steps import PythonScriptStep
from azureml.widgets import RunDetails

print("SDK version:", azureml.core.VERSION)

# Workspace and default datastore
ws = Workspace.from_config()
print(ws.name, ws.resource_group, ws.location, ws.subscription_id, sep="\n")
def_blob_store = ws.get_default_datastore()
print("Default datastore:", def_blob_store.name)

# Some small input data, uploaded to the datastore
os.makedirs("./local_data", exist_ok=True)
with open("./local_data/numbers.txt", "w") as f:
    f.write("\n".join(str(n) for n in range(1, 11)) + "\n")
def_blob_store.upload_files(["./local_data/numbers.txt"], target_path="start", overwrite=True)

# Compute target: find it, or create it
cluster_name = "cpu-cluster"
try:
    compute_target = ComputeTarget(workspace=ws, name=cluster_name)
    print("Found existing compute target")
except ComputeTargetException:
    print("Creating a new compute target...")
    compute_config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4)
    compute_target = ComputeTarget.create(ws, cluster_name, compute_config)
    compute_target.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=20)
print(compute_target.get_status().serialize())

# Data: a reference to what we uploaded, and an intermediate output
numbers = DataReference(
    datastore=def_blob_store, data_reference_name="numbers", path_on_datastore="start/numbers.txt"
)
squares = PipelineData("squares", datastore=def_blob_store)
print("PipelineData object created")

# Steps
square_step = PythonScriptStep(
    name="square",
    script_name="square.py",
    arguments=["--input", numbers, "--output", squares],
    inputs=[numbers],
    outputs=[squares],
    compute_target=compute_target,
    source_directory="./prep_src",
    allow_reuse=True,
)
print("square step created")

total_step = PythonScriptStep(
    name="total",
    script_name="total.py",
    arguments=["--squares", squares],
    inputs=[squares],
    compute_target=compute_target,
    source_directory="./train_src",
)
print("total step created")

pipeline1 = Pipeline(workspace=ws, steps=[total_step])
print("Pipeline is built")
pipeline1.validate()
print("Pipeline validation complete")

pipeline_run1 = Experiment(ws, "Hello_World").submit(pipeline1, regenerate_outputs=False)
print("Pipeline is submitted for execution")

RunDetails(pipeline_run1).show()
pipeline_run1.wait_for_completion(show_output=True)

# Look at what each step did
step_runs = pipeline_run1.get_children()
for step_run in step_runs:
    status = step_run.get_status()
    print("Script:", step_run.name, "status:", status)
    details = step_run.get_details()
    print(details["target"], details["status"], details["startTimeUtc"] is not None)

total_run = pipeline_run1.find_step_run("total")[0]
print("metrics:", total_run.get_metrics())
