# DataPath and PipelineParameter: the step's input is a datastore path given as a pipeline
# parameter, so the same pipeline runs on another file by overriding the parameter at submit.

import os

import azureml.core
from azureml.core import Datastore, Experiment, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.data.datapath import DataPath, DataPathComputeBinding
from azureml.pipeline.core import Pipeline, PipelineParameter
from azureml.pipeline.steps import PythonScriptStep
from azureml.widgets import RunDetails

print("SDK version:", azureml.core.VERSION)

ws = Workspace.from_config()
datastore = ws.get_default_datastore()

os.makedirs("tables", exist_ok=True)
with open("tables/small.csv", "w") as f:
    f.write("value\n1\n2\n3\n")
with open("tables/large.csv", "w") as f:
    f.write("value\n" + "\n".join(str(v) for v in range(1, 101)) + "\n")
datastore.upload(src_dir="tables", target_path="datapath_sample", overwrite=True)

try:
    compute_target = ComputeTarget(workspace=ws, name="cpu-cluster")
except ComputeTargetException:
    compute_target = ComputeTarget.create(
        ws,
        "cpu-cluster",
        AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=1),
    )
    compute_target.wait_for_completion(show_output=True)

data_path = DataPath(datastore=datastore, path_on_datastore="datapath_sample/small.csv")
datapath_param = PipelineParameter(name="input_data", default_value=data_path)
datapath_input = (datapath_param, DataPathComputeBinding(mode="mount"))

sum_step = PythonScriptStep(
    name="sum_values",
    script_name="sum_values.py",
    arguments=["--input_data", datapath_input],
    inputs=[datapath_input],
    compute_target=compute_target,
    source_directory="src",
    allow_reuse=True,
)

pipeline = Pipeline(workspace=ws, steps=[sum_step])
pipeline_run = Experiment(ws, "DataPath_Sample").submit(pipeline)
RunDetails(pipeline_run).show()
pipeline_run.wait_for_completion(show_output=True)

other_path = DataPath(datastore=datastore, path_on_datastore="datapath_sample/large.csv")
pipeline_run_2 = Experiment(ws, "DataPath_Sample").submit(
    pipeline, pipeline_parameters={"input_data": other_path}
)
pipeline_run_2.wait_for_completion(show_output=True)

# a path that does not exist: the failure reaches the program
missing = DataPath(datastore=datastore, path_on_datastore="datapath_sample/missing.csv")
pipeline_run_3 = Experiment(ws, "DataPath_Sample").submit(
    pipeline, pipeline_parameters={"input_data": missing}
)
try:
    pipeline_run_3.wait_for_completion(show_output=True, raise_on_error=True)
    print("missing path: no error")
except Exception as error:
    print("missing path failed:", "missing.csv" in str(error), "sum_values" in str(error))
