# Data transfer from a SQL database: register a PostgreSQL datastore (connection settings from
# the environment), copy a query's result into the default datastore as CSV with a
# DataTransferStep and a SqlDataReference, then read it in a script step.

import os

import azureml.core
from azureml.core import Datastore, Experiment, Workspace
from azureml.core.compute import AmlCompute, ComputeTarget, DataFactoryCompute
from azureml.core.compute_target import ComputeTargetException
from azureml.data.sql_data_reference import SqlDataReference
from azureml.pipeline.core import Pipeline, PipelineData
from azureml.pipeline.steps import DataTransferStep, PythonScriptStep

print("SDK version:", azureml.core.VERSION)

ws = Workspace.from_config()

sql_datastore_name = "sales_postgres"
try:
    sql_datastore = Datastore.get(ws, sql_datastore_name)
except Exception:
    sql_datastore = Datastore.register_azure_postgre_sql(
        workspace=ws,
        datastore_name=sql_datastore_name,
        server_name=os.getenv("PSQL_SERVER_NAME", "<my-server-name>"),
        database_name=os.getenv("PSQL_DATABASE_NAME", "<my-database-name>"),
        user_id=os.getenv("PSQL_USER_ID", "<my-user-id>"),
        user_password=os.getenv("PSQL_USER_PASSWORD", "<my-password>"),
        port_number=os.getenv("PSQL_PORT", "5432"),
        endpoint=os.getenv("PSQL_ENDPOINT", "postgres.database.azure.com"),
        enforce_ssl=False,
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

try:
    data_factory_compute = DataFactoryCompute(ws, "adf-compute")
except ComputeTargetException:
    data_factory_compute = ComputeTarget.create(
        ws, "adf-compute", DataFactoryCompute.provisioning_configuration()
    )
    data_factory_compute.wait_for_completion()

sql_query = SqlDataReference(
    datastore=sql_datastore,
    data_reference_name="big_sales",
    sql_query="SELECT region, amount FROM sales WHERE amount > 100 ORDER BY region",
)
sales_csv = PipelineData("sales_csv", datastore=ws.get_default_datastore())

transfer_sql_to_blob = DataTransferStep(
    name="transfer_sql_to_blob",
    source_data_reference=sql_query,
    destination_data_reference=sales_csv,
    compute_target=data_factory_compute,
    destination_reference_type="file",
)

report_step = PythonScriptStep(
    name="report",
    script_name="report.py",
    arguments=["--sales", sales_csv],
    inputs=[sales_csv],
    compute_target=cpu_cluster,
    source_directory="src",
)

pipeline = Pipeline(workspace=ws, steps=[report_step])
pipeline_run = Experiment(ws, "SQL_Transfer").submit(pipeline)
pipeline_run.wait_for_completion(show_output=True)
