# CommandStep: a ScriptRunConfig with a command and an MPI distributed job config, handed to a
# CommandStep in a pipeline; then the same script submitted on its own with a ScriptRunConfig.

import os

import azureml.core
from azureml.core import Environment, Experiment, ScriptRunConfig, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.core.runconfig import MpiConfiguration
from azureml.pipeline.core import Pipeline, PipelineData
from azureml.pipeline.steps import CommandStep
from azureml.widgets import RunDetails

print("SDK version:", azureml.core.VERSION)

ws = Workspace.from_config()
def_blob_store = ws.get_default_datastore()

cluster_name = "cpu-cluster"
try:
    cluster = ComputeTarget(workspace=ws, name=cluster_name)
    print("Found existing compute target")
except ComputeTargetException:
    compute_config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=4)
    cluster = ComputeTarget.create(ws, cluster_name, compute_config)
    cluster.wait_for_completion(show_output=True)

train_env = Environment("train-env")
train_env.environment_variables = {"STEPS": "4"}

model_dir = PipelineData("model_dir", datastore=def_blob_store)
src = ScriptRunConfig(
    source_directory="commandstep_train",
    command=["python train.py --epochs 3 --model-dir", model_dir],
    compute_target=cluster,
    environment=train_env,
    distributed_job_config=MpiConfiguration(node_count=2),
)
train = CommandStep(name="train-model", runconfig=src, outputs=[model_dir])

pipeline = Pipeline(workspace=ws, steps=[train])
pipeline_run = Experiment(ws, "train-commandstep-pipeline").submit(pipeline)
RunDetails(pipeline_run).show()
pipeline_run.wait_for_completion(show_output=True)

single = ScriptRunConfig(
    source_directory="commandstep_train",
    script="train.py",
    arguments=["--epochs", 2],
    compute_target=cluster,
    environment=train_env,
)
run = Experiment(ws, "train-single").submit(single)
run.wait_for_completion(show_output=True)
print("single metrics:", run.get_metrics())
print("single status:", run.get_status(), os.path.basename(single.source_directory))
