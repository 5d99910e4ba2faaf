# Pipelines with data dependency steps: extract -> train -> compare, each step consuming the
# previous step's PipelineData; the compare script is used twice without a step name, as v1
# allowed (both steps are then called by the script's name).

import os

import azureml.core
from azureml.core import Datastore, Experiment, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.core.runconfig import RunConfiguration
from azureml.data.data_reference import DataReference
from azureml.pipeline.core import Pipeline, PipelineData, StepSequence
from azureml.pipeline.steps import PythonScriptStep
from azureml.widgets import RunDetails

print("Azure ML SDK Version:", azureml.core.VERSION)

ws = Workspace.from_config()
default_store = ws.get_default_datastore()

os.makedirs("raw", exist_ok=True)
with open("raw/measurements.csv", "w") as f:
    f.write("x,y\n")
    for i in range(20):
        f.write("%d,%d\n" % (i, 3 * i + 1))
default_store.upload(src_dir="raw", target_path="dependency", overwrite=True, show_progress=True)

raw_data = DataReference(
    datastore=default_store,
    data_reference_name="raw_data",
    path_on_datastore="dependency/measurements.csv",
    mode="download",
)

compute_name = "cpu-cluster"
try:
    cpu_target = ComputeTarget(workspace=ws, name=compute_name)
    print("found compute target: " + compute_name)
except ComputeTargetException:
    config = AmlCompute.provisioning_configuration(
        vm_size="STANDARD_D2_V2", min_nodes=0, max_nodes=2
    )
    cpu_target = ComputeTarget.create(ws, compute_name, config)
    cpu_target.wait_for_completion(show_output=True)

run_config = RunConfiguration()
run_config.environment.python.user_managed_dependencies = True

# An output that is a single file (is_directory defaults to False): the script opens it directly.
extracted = PipelineData("extracted", datastore=default_store)
# An output folder the script creates itself.
model = PipelineData("model", datastore=default_store, is_directory=False)

extract_step = PythonScriptStep(
    script_name="extract.py",
    name="extract",
    arguments=["--input_data", raw_data, "--output_extract", extracted],
    inputs=[raw_data],
    outputs=[extracted],
    compute_target=cpu_target,
    source_directory="extract_src",
    runconfig=run_config,
    allow_reuse=True,
)
train_step = PythonScriptStep(
    script_name="train.py",
    name="train",
    arguments=["--input_data", extracted, "--output_model", model],
    inputs=[extracted],
    outputs=[model],
    compute_target=cpu_target,
    source_directory="train_src",
    runconfig=run_config,
)
compare_low = PythonScriptStep(
    script_name="compare.py",
    arguments=["--model", model, "--x", "2"],
    inputs=[model],
    compute_target=cpu_target,
    source_directory="compare_src",
)
compare_high = PythonScriptStep(
    script_name="compare.py",
    arguments=["--model", model, "--x", "10"],
    inputs=[model],
    compute_target=cpu_target,
    source_directory="compare_src",
)
compare_high.run_after(compare_low)

pipeline = Pipeline(
    workspace=ws, steps=StepSequence(steps=[extract_step, train_step, compare_low, compare_high])
)
pipeline.validate()
print("Pipeline is built and validated")

pipeline_run = Experiment(ws, "Data_dependency").submit(pipeline)
RunDetails(pipeline_run).show()
pipeline_run.wait_for_completion(show_output=True)
print("final status:", pipeline_run.get_status())

for child in pipeline_run.get_children():
    print(child.name, child.get_status())

compare_runs = pipeline_run.find_step_run("compare.py")
print("compare runs:", len(compare_runs))

train_run = pipeline_run.find_step_run("train")[0]
port = train_run.get_output("model").get_port_data_reference()
port.download(local_path="downloaded")
print("model downloaded")
