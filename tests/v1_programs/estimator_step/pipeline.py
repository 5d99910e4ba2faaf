# EstimatorStep: an Estimator with conda packages, run as a pipeline step that reads a
# FileDataset input and writes a PipelineData output.

import os

import azureml.core
from azureml.core import Dataset, Datastore, Experiment, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.pipeline.core import Pipeline, PipelineData
from azureml.pipeline.steps import EstimatorStep
from azureml.train.estimator import Estimator
from azureml.widgets import RunDetails

print("SDK version:", azureml.core.VERSION)

ws = Workspace.from_config()
def_blob_store = ws.get_default_datastore()

os.makedirs("train_data", exist_ok=True)
with open("train_data/points.txt", "w") as f:
    for i in range(10):
        f.write("%d %d\n" % (i, 2 * i))
def_blob_store.upload(src_dir="train_data", target_path="estimator_sample", overwrite=True)

cpu_cluster_name = "cpu-cluster"
try:
    cpu_cluster = ComputeTarget(workspace=ws, name=cpu_cluster_name)
    print("Found existing cluster, use it.")
except ComputeTargetException:
    compute_config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=2)
    cpu_cluster = ComputeTarget.create(ws, cpu_cluster_name, compute_config)
    cpu_cluster.wait_for_completion(show_output=True)

input_data = Dataset.File.from_files(path=[(def_blob_store, "estimator_sample/")])
output = PipelineData("output", datastore=def_blob_store)

est = Estimator(
    source_directory="estimator_train",
    entry_script="dummy_train.py",
    compute_target=cpu_cluster,
    conda_packages=["six"],
    pip_packages=["packaging"],
)

est_step = EstimatorStep(
    name="Estimator_Train",
    estimator=est,
    estimator_entry_script_arguments=[
        "--input_data",
        input_data.as_named_input("input").as_mount(),
        "--output",
        output,
    ],
    inputs=[input_data.as_named_input("input").as_mount()],
    outputs=[output],
    compute_target=cpu_cluster,
)

pipeline = Pipeline(workspace=ws, steps=[est_step])
pipeline_run = Experiment(ws, "Estimator_sample").submit(pipeline)
RunDetails(pipeline_run).show()
pipeline_run.wait_for_completion(show_output=True)

step_run = pipeline_run.find_step_run("Estimator_Train")[0]
print(step_run.get_details()["target"])
