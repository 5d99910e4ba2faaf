"""v1's other datastore registrations: ADLS Gen2 (adlfs over Azurite's blob endpoint), Azure Files
(refused, with what to use instead) and the SQL databases, whose ``SqlDataReference`` is the
source of a ``DataTransferStep`` that writes the query's result as CSV.

The SQL tests run against a real PostgreSQL cluster started here on a free loopback port, with
password authentication, so the run proves the password reached the worker from the credential
file and from nowhere else. They skip where PostgreSQL is not installed, unless
MLPIPE_REQUIRE_POSTGRES=1 (CI) turns that into a failure.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import stat
import warnings

import pytest
from azurite import ACCOUNT_KEY, ACCOUNT_NAME
from conftest import write_script
from postgres_server import AVAILABLE as POSTGRES_AVAILABLE
from postgres_server import PostgresCluster
from services import unavailable

from compiler.compile import compile_pipeline
from mlpipe_provider.errors import DatastoreError, NotSupportedError, PipelineValidationError
from mlpipe_provider.sdk import (
    DataReference,
    Datastore,
    DataTransferStep,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    SqlDataReference,
    StoredProcedureParameter,
    StoredProcedureParameterType,
)

COUNT_ROWS = """
    import os, sys
    src, out = sys.argv[1], sys.argv[2]
    open(os.environ["MLPIPE_TEST_CALLS"], "a").write("count\\n")
    path = os.path.join(src, "orders.csv") if os.path.isdir(src) else src
    lines = open(path).read().splitlines()
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "count.txt"), "w").write(f"{len(lines) - 1} rows; last {lines[-1]}")
"""


def _quiet_run(run_dag, pipeline, dag_id):
    with contextlib.redirect_stdout(io.StringIO()):
        dag_run, records = run_dag(pipeline, dag_id=dag_id)
    assert str(dag_run.state) == "success", records
    return records


def _states(records, *task_ids):
    return [records[t][0] for t in task_ids]


# --- ADLS Gen2 on Azurite's blob endpoint -----------------------------------------------------


def _register_gen2(ws, azurite, name="lake"):
    return Datastore.register_azure_data_lake_gen2(
        workspace=ws,
        datastore_name=name,
        filesystem=azurite.new_container(),
        account_name=ACCOUNT_NAME,
        protocol="http",
        endpoint=f"127.0.0.1:{azurite.port}",
        account_key=ACCOUNT_KEY,
    )


def test_adls_gen2_upload_download_and_a_step_reading_it(
    ws, project, azurite, run_dag, tmp_path, monkeypatch
):
    lake = _register_gen2(ws, azurite)
    config_text = (ws._dir / "config.json").read_text()
    entry = json.loads(config_text)["datastores"]["lake"]
    assert entry["datastore_type"] == "AzureDataLakeGen2" == lake.datastore_type
    assert entry["url"] == f"abfs://{lake.container_name}"
    assert ACCOUNT_KEY not in config_text
    assert stat.S_IMODE((ws._dir / entry["credential_file"]).stat().st_mode) == 0o600

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "orders.csv").write_text("id,item\n1,apple\n")
    (src / "sub" / "more.csv").write_text("id,item\n2,pear\n")
    lake.upload(str(src), target_path="raw", show_progress=False)
    assert lake.download(str(tmp_path / "back"), prefix="raw/", show_progress=False) == 2
    assert (tmp_path / "back/raw/sub/more.csv").read_text() == "id,item\n2,pear\n"

    calls = tmp_path / "calls.log"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(calls))
    write_script(project / "steps", "count.py", COUNT_ROWS)
    counted = PipelineData("counted")
    step = PythonScriptStep(
        name="count",
        script_name="count.py",
        source_directory="steps",
        arguments=[DataReference(lake, "raw_orders", "raw/orders.csv"), counted],
        inputs=[DataReference(lake, "raw_orders", "raw/orders.csv")],
        outputs=[counted],
    )
    archive = Datastore.register_local(ws, "archive", "datastores/archive")
    copy = DataTransferStep(
        name="land",
        source_data_reference=DataReference(lake, "raw", "raw"),
        destination_data_reference=DataReference(archive, "landed", "landed/raw"),
    )
    records = _quiet_run(run_dag, Pipeline(ws, [step, copy]), "gen2_read")
    output = records["count"][1]["outputs"]["counted"]
    folder = ws._dir / "datastores" / "workspaceblobstore" / output["path"]
    assert (folder / "count.txt").read_text() == "1 rows; last 1,apple"
    assert calls.read_text() == "count\n"
    landed = ws._dir / "datastores" / "archive" / "landed" / "raw"
    assert (landed / "sub" / "more.csv").read_text() == "id,item\n2,pear\n"
    assert (landed / "orders.csv").read_text() == "id,item\n1,apple\n"


def test_adls_gen2_service_principal_secret_stays_out_of_the_config(ws):
    from azure.identity.aio import ClientSecretCredential

    from mlpipe_provider.hooks.datastore import storage_options

    secret = "sp-" + secrets.token_hex(12)
    Datastore.register_azure_data_lake_gen2(
        ws,
        "splake",
        "myfs",
        "myaccount",
        tenant_id="tenant-1",
        client_id="client-1",
        client_secret=secret,
        authority_url="https://login.microsoftonline.us",
        skip_validation=True,
    )
    config_text = (ws._dir / "config.json").read_text()
    assert secret not in config_text
    entry = json.loads(config_text)["datastores"]["splake"]
    assert (entry["tenant_id"], entry["client_id"]) == ("tenant-1", "client-1")
    assert entry["account_url"] == "https://myaccount.blob.core.windows.net"
    secret_file = ws._dir / entry["credential_file"]
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert json.loads(secret_file.read_text()) == {"client_secret": secret}
    options = storage_options(ws._dir, "splake", ws._config.datastores["splake"], "abfs")
    assert isinstance(options["credential"], ClientSecretCredential)
    assert options["account_name"] == "myaccount"
    with pytest.raises(DatastoreError, match="tenant_id, client_id and client_secret together"):
        Datastore.register_azure_data_lake_gen2(ws, "half", "fs", "acct", tenant_id="t")


def test_azure_file_share_is_refused_with_what_to_use_instead(ws):
    with pytest.raises(NotSupportedError, match="register_local.*register_azure_blob_container"):
        Datastore.register_azure_file_share(ws, "share", "myshare", "acct", account_key="k")
    assert "share" not in ws._config.datastores


# --- SQL databases -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres():
    if not POSTGRES_AVAILABLE:
        unavailable(
            "postgres", "PostgreSQL (initdb, pg_ctl) is missing: apt-get install postgresql"
        )
    cluster = PostgresCluster(database="sales", password="pw-" + secrets.token_hex(8))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _register_pg(ws, postgres, name="salesdb", password=None):
    return Datastore.register_azure_postgre_sql(
        workspace=ws,
        datastore_name=name,
        server_name="127.0.0.1",
        database_name=postgres.database,
        user_id="postgres",
        user_password=password or postgres.password,
        port_number=str(postgres.port),
        enforce_ssl=False,
    )


def test_postgres_registration_keeps_credentials_out_of_the_config(ws, postgres):
    store = _register_pg(ws, postgres)
    config_text = (ws._dir / "config.json").read_text()
    assert postgres.password not in config_text
    entry = json.loads(config_text)["datastores"]["salesdb"]
    assert entry["datastore_type"] == "AzurePostgreSql" == store.datastore_type
    assert (store.server_name, store.database_name) == ("127.0.0.1", "sales")
    assert (store.port_number, store.enforce_ssl) == (str(postgres.port), False)
    assert (entry["host"], entry["port"], entry["database_name"]) == (
        "127.0.0.1",
        postgres.port,
        "sales",
    )
    secret_file = ws._dir / entry["credential_file"]
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert json.loads(secret_file.read_text())["password"] == postgres.password
    with pytest.raises(DatastoreError, match="which holds no files"):
        store.upload(str(ws._dir), target_path="x", show_progress=False)

    wrong = "wrong-" + secrets.token_hex(6)
    with pytest.raises(DatastoreError, match="cannot reach database") as caught:
        _register_pg(ws, postgres, name="salesdb", password=wrong)
    assert wrong not in str(caught.value)
    assert json.loads(secret_file.read_text())["password"] == postgres.password


def test_sql_query_to_csv_reused_then_rerun_when_the_table_changes(
    ws, project, postgres, run_dag, tmp_path, monkeypatch
):
    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS orders")
        cur.execute("CREATE TABLE orders (id int primary key, item text, price numeric(6,2))")
        cur.execute(
            "INSERT INTO orders VALUES (1, 'apple', 0.50), (2, 'pear, green', 1.25), (3, NULL, 2)"
        )
    sales = _register_pg(ws, postgres)
    archive = Datastore.register_local(ws, "archive", "datastores/archive")
    calls = tmp_path / "calls.log"
    monkeypatch.setenv("MLPIPE_TEST_CALLS", str(calls))
    write_script(project / "steps", "count.py", COUNT_ROWS)

    extracted, counted = PipelineData("extracted"), PipelineData("counted")
    query = SqlDataReference(
        sales, "orders", sql_query="SELECT id, item, price FROM orders ORDER BY id"
    )
    to_pipeline_data = DataTransferStep(
        name="extract", source_data_reference=query, destination_data_reference=extracted
    )
    to_file = DataTransferStep(
        name="export",
        source_data_reference=SqlDataReference(sales, "whole", sql_table="orders"),
        destination_data_reference=DataReference(archive, "exported", "exports/orders.csv"),
        destination_reference_type="file",
    )
    count = PythonScriptStep(
        name="count",
        script_name="count.py",
        source_directory="steps",
        arguments=[to_pipeline_data.get_output(), counted],
        inputs=[to_pipeline_data.get_output()],
        outputs=[counted],
    )
    steps = [to_pipeline_data, to_file, count]

    def run():
        return _quiet_run(run_dag, Pipeline(ws, steps), "sql_to_csv")

    first = run()
    assert _states(first, "extract", "export", "count") == ["success"] * 3
    record = first["extract"][1]
    out = ws._dir / "datastores" / "workspaceblobstore" / record["outputs"]["extracted"]["path"]
    expected = 'id,item,price\n1,apple,0.50\n2,"pear, green",1.25\n3,,2.00\n'
    assert sorted(p.name for p in out.iterdir()) == ["orders.csv"]
    assert (out / "orders.csv").read_text() == expected
    assert record["transfer"]["source"]["sql"]["query"].startswith("SELECT id, item")
    exported = ws._dir / "datastores" / "archive" / "exports" / "orders.csv"
    assert exported.read_text() == expected  # SELECT * FROM orders, heap order: the same rows
    assert calls.read_text() == "count\n"

    second = run()
    assert _states(second, "extract", "export", "count") == ["skipped"] * 3
    assert calls.read_text() == "count\n"

    with postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("UPDATE orders SET price = 9.99 WHERE id = 3")
    third = run()
    assert _states(third, "extract", "export", "count") == ["success"] * 3
    changed = third["extract"][1]["outputs"]["extracted"]
    assert changed["digest"] != record["outputs"]["extracted"]["digest"]
    counted_path = third["count"][1]["outputs"]["counted"]["path"]
    summary = ws._dir / "datastores" / "workspaceblobstore" / counted_path / "count.txt"
    assert summary.read_text() == "3 rows; last 3,,9.99"
    assert exported.read_text().endswith("3,,9.99\n")
    assert calls.read_text() == "count\ncount\n"


def test_sql_sources_and_sinks_are_checked_when_compiling(ws, project):
    Datastore.register_azure_my_sql(
        ws, "shop", "myserver", "shop", "reader", "pw", skip_validation=True
    )
    local = ws.get_default_datastore()
    bad = [
        DataTransferStep(
            name="not_sql",
            source_data_reference=SqlDataReference(local, "x", sql_table="t"),
            destination_data_reference=PipelineData("a"),
        ),
        DataTransferStep(
            name="into_sql",
            source_data_reference=DataReference(local, "src", "in.csv"),
            destination_data_reference=DataReference("shop", "dst", "t"),
        ),
        DataTransferStep(
            name="files_from_sql",
            source_data_reference=DataReference("shop", "tbl", "t"),
            destination_data_reference=PipelineData("b"),
        ),
    ]
    with pytest.raises(PipelineValidationError) as caught:
        compile_pipeline(Pipeline(ws, bad), "refused", project / "refused-dags")
    text = str(caught.value)
    assert "'not_sql', field 'source_data_reference'" in text and "not a SQL database" in text
    assert "'into_sql', field 'destination_data_reference'" in text
    assert "'files_from_sql', field 'source_data_reference'" in text and "SqlDataReference" in text
    with pytest.raises(Exception, match="exactly one of sql_table, sql_query"):
        SqlDataReference("shop", "both", sql_table="t", sql_query="SELECT 1")


def test_mysql_and_sql_server_register_without_a_driver_and_name_it_when_used(ws):
    from mlpipe_provider.sql_datastores import SQL_KINDS, available_driver, open_engine

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        Datastore.register_azure_my_sql(ws, "shop", "myserver", "shop", "reader", "pw")
        Datastore.register_azure_sql_database(
            ws, "dw", "sample", "warehouse", username="reader", password="pw"
        )
    dw = ws._config.datastores["dw"]
    assert dw.model_extra["host"] == "sample.database.windows.net"
    assert dw.model_extra["port"] == 1433
    assert ws._config.datastores["shop"].model_extra["host"] == "myserver.mysql.database.azure.com"
    for name, kind in (("shop", "AzureMySql"), ("dw", "AzureSqlDatabase")):
        if available_driver(SQL_KINDS[kind]) is not None:
            continue  # installed here: nothing to report
        with pytest.raises(DatastoreError, match="install") as caught:
            open_engine(ws._dir, name, ws._config.datastores[name])
        assert SQL_KINDS[kind].install in str(caught.value)
    with pytest.raises(Exception, match="User id is required|user_id is required"):
        Datastore.register_azure_my_sql(ws, "x", "s", "d", None, "pw")


def test_stored_procedures_use_each_dialects_call_syntax():
    from sqlalchemy.dialects import mssql, mysql, postgresql

    from mlpipe_provider.runtime.sql_source import statement

    ref = SqlDataReference(
        "db",
        "proc",
        sql_stored_procedure="dbo.GetOrders",
        sql_stored_procedure_params=[
            StoredProcedureParameter("since", "2024-01-02", StoredProcedureParameterType.Date),
            StoredProcedureParameter("top", "5", StoredProcedureParameterType.Int),
        ],
    )
    sql = ref.statement()
    pg_text, pg_params = statement(postgresql.dialect(), sql)
    assert pg_text == 'SELECT * FROM dbo."GetOrders"(since => :p0, top => :p1)'
    assert pg_params["p1"] == 5 and pg_params["p0"].year == 2024
    assert statement(mssql.dialect(), sql)[0] == "EXEC dbo.[GetOrders] @since = :p0, @top = :p1"
    assert statement(mysql.dialect(), sql)[0] == "CALL dbo.`GetOrders`(:p0, :p1)"
    not_a_date = SqlDataReference(
        "db",
        "bad",
        sql_stored_procedure="p",
        sql_stored_procedure_params=[StoredProcedureParameter("d", "soon", "Date")],
    )
    with pytest.raises(Exception, match="'d': 'soon' is not a valid Date"):
        not_a_date.statement()
    table = SqlDataReference("db", "t", sql_table='sales."Order Lines"').statement()
    assert statement(postgresql.dialect(), table)[0] == 'SELECT * FROM sales."Order Lines"'


def test_a_sql_transfer_dag_is_stable_and_holds_no_secret(ws, project):
    password = "pw-" + secrets.token_hex(8)
    sales = Datastore.register_azure_postgre_sql(
        ws, "sales", "pg.example.com", "sales", "reader", password, skip_validation=True
    )
    with pytest.raises(DatastoreError, match="holds no files"):
        sales.set_as_default()
    step = DataTransferStep(
        name="extract",
        source_data_reference=SqlDataReference(
            sales,
            "proc",
            sql_stored_procedure="recent_orders",
            sql_stored_procedure_params=[
                StoredProcedureParameter("since", "2024-01-01", StoredProcedureParameterType.Date)
            ],
        ),
        destination_data_reference=PipelineData("rows"),
    )
    texts = []
    for folder in ("a", "b"):
        compiled = compile_pipeline(Pipeline(ws, [step]), "sql_dag", project / folder)
        compiled.write()
        texts.append(compiled.path.read_bytes())
    assert texts[0] == texts[1]
    assert password.encode() not in texts[0] and b"recent_orders" in texts[0]


def test_postgres_credentials_from_an_airflow_connection(ws, postgres, monkeypatch):
    """``connection_id=`` (an mlpipe addition): login and password come from the connection, read
    where the database is used, and nothing secret is written in the workspace."""
    from sqlalchemy import text

    from mlpipe_provider.sql_datastores import open_engine

    monkeypatch.setenv(
        "AIRFLOW_CONN_SALES_PG",
        json.dumps(
            {
                "conn_type": "postgres",
                "login": "postgres",
                "password": postgres.password,
                "host": "127.0.0.1",
                "port": postgres.port,
            }
        ),
    )
    Datastore.register_azure_postgre_sql(
        ws,
        "viaconn",
        "db.example.com",
        postgres.database,
        None,
        None,
        enforce_ssl=False,
        connection_id="sales_pg",
    )
    assert not (ws._dir / "credentials" / "viaconn.json").exists()
    assert postgres.password not in (ws._dir / "config.json").read_text()
    engine = open_engine(ws._dir, "viaconn", ws._config.datastores["viaconn"])
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_database()")).scalar() == "sales"
    finally:
        engine.dispose()
