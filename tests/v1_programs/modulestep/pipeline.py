# Module, ModuleVersion and ModuleStep: one module with two versions (an entry version without
# inputs and a default version that takes inputs), used three times in one pipeline. The steps
# are not named, so each takes its module's name, as in v1.

import azureml.core
from azureml.core import Datastore, Experiment, RunConfiguration, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter
from azureml.pipeline.core.graph import InputPortDef, OutputPortDef
from azureml.pipeline.core.module import Module
from azureml.pipeline.steps import ModuleStep

print("SDK version:", azureml.core.VERSION)

workspace = Workspace.from_config()
print(workspace.name, workspace.location, sep="\n")

compute_name = "cpu-cluster"
try:
    compute = AmlCompute(workspace, compute_name)
    print("Found existing compute target: {}".format(compute_name))
except Exception:
    print("Creating new compute target: {}".format(compute_name))
    provisioning = AmlCompute.provisioning_configuration(
        vm_size="STANDARD_D2_V2", min_nodes=0, max_nodes=2
    )
    compute = ComputeTarget.create(workspace, compute_name, provisioning)
    compute.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=20)

datastore = Datastore(workspace=workspace, name="workspaceblobstore")

module = Module.create(
    workspace, name="SumAndProduct", description="adds and multiplies two numbers"
)

sum_port = OutputPortDef(
    name="out_sum",
    default_datastore_name=datastore.name,
    default_datastore_mode="mount",
    label="sum",
)
prod_port = OutputPortDef(
    name="out_prod",
    default_datastore_name=datastore.name,
    default_datastore_mode="mount",
    label="product",
)
entry_version = module.publish_python_script(
    "calc.py",
    "entry",
    inputs=[],
    outputs=[sum_port, prod_port],
    params={"start": 3},
    version="1",
    source_directory="./calc",
)

in_a = InputPortDef(
    name="in_a",
    default_datastore_mode="mount",
    default_data_reference_name=datastore.name,
    label="a",
)
in_b = InputPortDef(
    name="in_b",
    default_datastore_mode="mount",
    default_data_reference_name=datastore.name,
    label="b",
)
mid_sum = OutputPortDef(
    name="out_sum",
    default_datastore_name=datastore.name,
    default_datastore_mode="mount",
    label="sum",
)
mid_prod = OutputPortDef(
    name="out_prod",
    default_datastore_name=datastore.name,
    default_datastore_mode="mount",
    label="product",
)
module.publish_python_script(
    "calc.py",
    "middle",
    inputs=[in_a, in_b],
    outputs=[mid_sum, mid_prod],
    version="2",
    is_default=True,
    source_directory="./calc",
)

# single-file outputs, as the module writes them
first_sum = PipelineData("first_sum", datastore=datastore, output_mode="mount", is_directory=False)
first_prod = PipelineData(
    "first_prod", datastore=datastore, output_mode="mount", is_directory=False
)
start_value = PipelineParameter(name="start_value", default_value=4)
first = ModuleStep(
    module_version=entry_version,
    inputs_map={},
    outputs_map={"out_sum": first_sum, "out_prod": first_prod},
    runconfig=RunConfiguration(),
    compute_target=compute,
    arguments=[
        "--output_sum",
        first_sum,
        "--output_product",
        first_prod,
        "--num1",
        start_value,
        "--num2",
        "5",
    ],
)

second_sum = PipelineData(
    "second_sum", datastore=datastore, output_mode="mount", is_directory=False
)
second_prod = PipelineData(
    "second_prod", datastore=datastore, output_mode="mount", is_directory=False
)
second = ModuleStep(
    module=module,
    inputs_map={"in_a": first_sum, "in_b": first_prod},
    outputs_map={"out_sum": second_sum, "out_prod": second_prod},
    runconfig=RunConfiguration(),
    compute_target=compute,
    arguments=[
        "--file_num1",
        first_sum,
        "--file_num2",
        first_prod,
        "--output_sum",
        second_sum,
        "--output_product",
        second_prod,
    ],
)

third_sum = PipelineData("third_sum", datastore=datastore, output_mode="mount", is_directory=False)
third_prod = PipelineData(
    "third_prod", datastore=datastore, output_mode="mount", is_directory=False
)
third = ModuleStep(
    module=module,
    version="2",
    inputs_map={"in_a": second_sum, "in_b": second_prod},
    outputs_map={"out_sum": third_sum, "out_prod": third_prod},
    runconfig=RunConfiguration(),
    compute_target=compute,
    arguments=[
        "--file_num1",
        second_sum,
        "--file_num2",
        second_prod,
        "--output_sum",
        third_sum,
        "--output_product",
        third_prod,
    ],
)

pipeline = Pipeline(workspace=workspace, steps=[first, second, third], description="module steps")
pipeline_run = Experiment(workspace, "module-step").submit(
    pipeline, pipeline_parameters={"start_value": 6}
)
pipeline_run.wait_for_completion(show_output=True)

steps = pipeline_run.find_step_run("SumAndProduct")
print("steps named SumAndProduct:", len(steps))
