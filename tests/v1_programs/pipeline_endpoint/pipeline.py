# Versioned pipeline endpoints: publish two pipelines, put both behind one PipelineEndpoint,
# make the second the default, list the versions and submit by version.

import azureml.core
from azureml.core import Experiment, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute_target import ComputeTargetException
from azureml.pipeline.core import Pipeline, PipelineEndpoint, PipelineParameter, PublishedPipeline
from azureml.pipeline.steps import PythonScriptStep

print("SDK version:", azureml.core.VERSION)

workspace = Workspace.from_config()

try:
    aml_compute = ComputeTarget(workspace=workspace, name="cpu-cluster")
except ComputeTargetException:
    aml_compute = ComputeTarget.create(
        workspace,
        "cpu-cluster",
        AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=1),
    )
    aml_compute.wait_for_completion(show_output=True)

greeting = PipelineParameter(name="greeting", default_value="hello")


def make_pipeline(times):
    step = PythonScriptStep(
        name="greet",
        script_name="greet.py",
        arguments=["--greeting", greeting, "--times", times],
        compute_target=aml_compute,
        source_directory="src",
    )
    return Pipeline(workspace=workspace, steps=[step])


published_one = make_pipeline(1).publish(name="Greeter", description="greets once", version="1")
published_two = make_pipeline(3).publish(
    name="Greeter", description="greets three times", version="2"
)

try:
    pipeline_endpoint = PipelineEndpoint.get(workspace=workspace, name="GreeterEndpoint")
    pipeline_endpoint.add(published_one)
except Exception:
    pipeline_endpoint = PipelineEndpoint.publish(
        workspace=workspace,
        name="GreeterEndpoint",
        pipeline=published_one,
        description="versioned greeter",
    )
pipeline_endpoint.add_default(published_two)
print("default version:", pipeline_endpoint.get_default_version())

for version in pipeline_endpoint.list_versions():
    print("version", version.version, "->", version.pipeline)

by_name = PipelineEndpoint.get(workspace=workspace, name="GreeterEndpoint")
first_pipeline = by_name.get_pipeline(version="0")
print("version 0 is", first_pipeline.id, isinstance(first_pipeline, PublishedPipeline))

run_default = by_name.submit("Endpoint_Run", pipeline_parameters={"greeting": "hi"})
run_default.wait_for_completion(show_output=True)
run_v0 = by_name.submit(
    "Endpoint_Run", pipeline_parameters={"greeting": "hi"}, pipeline_version="0"
)
run_v0.wait_for_completion(show_output=True)
