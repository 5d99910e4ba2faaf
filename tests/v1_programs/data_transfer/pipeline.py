# Data transfer: register a blob container datastore (account settings from the environment, as
# Microsoft's sample reads them), upload files to it, copy them into the workspace's default
# datastore with a DataTransferStep, and summarise the copy in a script step.

import os

import azureml.core
from azureml.core import Datastore, Experiment, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget, DataFactoryCompute
from azureml.core.compute_target import ComputeTargetException
from azureml.data.data_reference import DataReference
from azureml.pipeline.core import Pipeline, PipelineData
from azureml.pipeline.steps import DataTransferStep, PythonScriptStep

print("SDK version:", azureml.core.VERSION)

ws = Workspace.from_config()

blob_datastore_name = "source_blob"
account_name = os.getenv("BLOB_ACCOUNTNAME_62", "<my-account-name>")
account_key = os.getenv("BLOB_ACCOUNT_KEY_62", "<my-account-key>")
container_name = os.getenv("BLOB_CONTAINER_62", "<my-container-name>")
endpoint = os.getenv("BLOB_ENDPOINT_62", "core.windows.net")
protocol = os.getenv("BLOB_PROTOCOL_62", "https")

try:
    blob_datastore = Datastore.get(ws, blob_datastore_name)
    print("Found Blob Datastore with name: %s" % blob_datastore_name)
except Exception:
    blob_datastore = Datastore.register_azure_blob_container(
        workspace=ws,
        datastore_name=blob_datastore_name,
        account_name=account_name,
        container_name=container_name,
        account_key=account_key,
        protocol=protocol,
        endpoint=endpoint,
    )
    print("Registered blob datastore with name: %s" % blob_datastore_name)

os.makedirs("to_transfer", exist_ok=True)
for month in ("01", "02", "03"):
    with open("to_transfer/sales-%s.csv" % month, "w") as f:
        f.write("month,amount\n%s,%d\n" % (month, int(month) * 100))
blob_datastore.upload(
    src_dir="to_transfer", target_path="sales", overwrite=True, show_progress=True
)

try:
    cpu_cluster = ComputeTarget(workspace=ws, name="cpu-cluster")
except ComputeTargetException:
    cpu_cluster = ComputeTarget.create(
        ws,
        "cpu-cluster",
        AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=1),
    )
    cpu_cluster.wait_for_completion(show_output=True)

data_factory_name = "adf-compute"
try:
    data_factory_compute = DataFactoryCompute(ws, data_factory_name)
except ComputeTargetException:
    print("creating new data factory compute")
    provisioning_config = DataFactoryCompute.provisioning_configuration()
    data_factory_compute = ComputeTarget.create(ws, data_factory_name, provisioning_config)
    data_factory_compute.wait_for_completion()

blob_data_ref = DataReference(
    datastore=blob_datastore, data_reference_name="blob_test_data", path_on_datastore="sales"
)
copied = PipelineData("copied_sales", datastore=ws.get_default_datastore(), is_directory=True)

transfer_blob_to_default = DataTransferStep(
    name="transfer_blob_to_default",
    source_data_reference=blob_data_ref,
    destination_data_reference=copied,
    compute_target=data_factory_compute,
    source_reference_type="directory",
    destination_reference_type="directory",
)

summary = PipelineData("summary", datastore=ws.get_default_datastore())
summarize = PythonScriptStep(
    name="summarize_sales",
    script_name="summarize.py",
    arguments=["--sales", copied, "--summary", summary],
    inputs=[copied],
    outputs=[summary],
    compute_target=cpu_cluster,
    source_directory="src",
)

pipeline_01 = Pipeline(description="data_transfer_101", workspace=ws, steps=[summarize])
pipeline_01.validate()
pipeline_run = Experiment(ws, "Data_Transfer_example").submit(pipeline_01)
pipeline_run.wait_for_completion(show_output=True)
