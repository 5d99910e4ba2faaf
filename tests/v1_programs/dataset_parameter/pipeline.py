# Datasets as pipeline parameters: a FileDataset of one file is the default value of a
# PipelineParameter consumed by the step; a submit overrides it with another dataset.

import os

import azureml.core
from azureml.core import Dataset, Datastore, Experiment, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.data.dataset_consumption_config import DatasetConsumptionConfig
from azureml.pipeline.core import Pipeline, PipelineParameter
from azureml.pipeline.steps import PythonScriptStep

print("SDK version:", azureml.core.VERSION)

ws = Workspace.from_config()
datastore = ws.get_default_datastore()

os.makedirs("iris", exist_ok=True)
with open("iris/iris_a.csv", "w") as f:
    f.write("sepal_length,species\n5.1,setosa\n7.0,versicolor\n6.3,virginica\n")
with open("iris/iris_b.csv", "w") as f:
    f.write("sepal_length,species\n4.9,setosa\n5.0,setosa\n")
datastore.upload(src_dir="iris", target_path="dataset_sample", overwrite=True)

try:
    compute_target = ComputeTarget(workspace=ws, name="cpu-cluster")
except ComputeTargetException:
    compute_target = ComputeTarget.create(
        ws,
        "cpu-cluster",
        AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=1),
    )
    compute_target.wait_for_completion(show_output=True)

file_dataset = Dataset.File.from_files(path=[(datastore, "dataset_sample/iris_a.csv")])
file_dataset = file_dataset.register(ws, name="iris_a", create_new_version=True)
other_dataset = Dataset.File.from_files(path=(datastore, "dataset_sample/iris_b.csv"))

file_pipeline_param = PipelineParameter(name="file_ds_param", default_value=file_dataset)
file_ds_consumption = DatasetConsumptionConfig("input_1", file_pipeline_param).as_mount()

count_step = PythonScriptStep(
    name="count_rows",
    script_name="count_rows.py",
    arguments=["--param1", file_ds_consumption],
    inputs=[file_ds_consumption],
    compute_target=compute_target,
    source_directory="src",
    allow_reuse=True,
)

pipeline = Pipeline(workspace=ws, steps=[count_step])
pipeline_run = Experiment(ws, "Dataset_Parameter").submit(pipeline)
pipeline_run.wait_for_completion(show_output=True)

pipeline_run_with_other = Experiment(ws, "Dataset_Parameter").submit(
    pipeline, pipeline_parameters={"file_ds_param": other_dataset}
)
pipeline_run_with_other.wait_for_completion(show_output=True)

print("registered:", Dataset.get_by_name(ws, "iris_a").name)
