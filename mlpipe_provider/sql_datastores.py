"""SQL databases registered as datastores (v1's Azure SQL Database, PostgreSQL and MySQL).

They hold no files: v1 used them only through ``SqlDataReference`` as a ``DataTransferStep``
source, and so does mlpipe (``runtime/sql_source.py`` runs the query and writes CSV). The config
entry says where the server is; the user name, the password and a service principal's secret go
to the 0600 credential file, like a blob key, or live in an Airflow connection
(``connection_id``). Engines are SQLAlchemy's, built from a ``URL`` object, so a password is never
spliced into a connection string, a DAG file or a log line.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpipe_provider.config import DatastoreConfig
from mlpipe_provider.errors import DatastoreError, UserErrorException


@dataclass(frozen=True)
class SqlKind:
    """What differs between the three v1 SQL datastore types."""

    method: str  # the v1 registration method, for messages
    label: str  # the v1 error wording ("User id is required for PostreSQL.")
    default_endpoint: str
    default_port: int
    scheme: str  # the SQLAlchemy dialect
    drivers: tuple[
        tuple[str, str], ...
    ]  # (importable module, SQLAlchemy drivername), preferred first
    install: str  # what to install when none of the drivers is there


SQL_KINDS: dict[str, SqlKind] = {
    "AzurePostgreSql": SqlKind(
        "register_azure_postgre_sql",
        "PostreSQL",
        "postgres.database.azure.com",
        5432,
        "postgresql",
        (("psycopg2", "postgresql+psycopg2"), ("psycopg", "postgresql+psycopg")),
        "psycopg2-binary (or psycopg)",
    ),
    "AzureMySql": SqlKind(
        "register_azure_my_sql",
        "My SQL",
        "mysql.database.azure.com",
        3306,
        "mysql",
        (("pymysql", "mysql+pymysql"), ("MySQLdb", "mysql+mysqldb")),
        "PyMySQL (or mysqlclient)",
    ),
    "AzureSqlDatabase": SqlKind(
        "register_azure_sql_database",
        "SQL Database",
        "database.windows.net",
        1433,
        "mssql",
        (("pyodbc", "mssql+pyodbc"), ("pymssql", "mssql+pymssql")),
        "pyodbc with Microsoft's 'ODBC Driver 18 for SQL Server' (or pymssql)",
    ),
}

ODBC_DRIVER = "ODBC Driver 18 for SQL Server"
CONNECT_TIMEOUT_S = 15


def is_sql_datastore(entry: DatastoreConfig) -> bool:
    return entry.datastore_type in SQL_KINDS


def server_host(server_name: str, endpoint: str | None, kind: SqlKind) -> str:
    """v1 joins ``server_name`` and ``endpoint`` (``sample`` + ``database.windows.net``); a
    server name that is already a host name, ``localhost`` or an IP address is used as given."""
    if server_name == "localhost" or "." in server_name or ":" in server_name:
        return server_name
    try:
        ipaddress.ip_address(server_name)
        return server_name
    except ValueError:
        pass
    return f"{server_name}.{endpoint or kind.default_endpoint}"


def _port(value: Any, kind: SqlKind) -> int:
    if value is None or value == "":
        return kind.default_port
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise DatastoreError(
            f"{kind.method}: port_number must be a number, got {value!r}"
        ) from None
    if not 0 < port < 65536:
        raise DatastoreError(f"{kind.method}: port_number {port} is not a TCP port")
    return port


def register_sql(
    workspace: Any,
    datastore_type: str,
    *,
    datastore_name: str,
    server_name: str,
    database_name: str,
    user: str | None,
    password: str | None,
    port_number: Any,
    endpoint: str | None,
    overwrite: bool,
    enforce_ssl: bool | None = None,
    principal: dict[str, str | None] | None = None,
    options: dict[str, Any] | None = None,
) -> str:
    """Record the server in the config and the secrets in the credential file; check that the
    database answers (v1 did) when its driver is installed and ``skip_validation`` is not set."""
    from mlpipe_provider.datastore_registration import CREDENTIALS_DIR, write_credential_file

    kind = SQL_KINDS[datastore_type]
    options = dict(options or {})
    principal = {k: v for k, v in (principal or {}).items() if v}
    skip_validation = bool(options.pop("skip_validation", False))
    connection_id = options.pop("connection_id", None)
    required = [("datastore_name", datastore_name), ("server_name", server_name)]
    required.append(("database_name", database_name))
    if datastore_type != "AzureSqlDatabase" and connection_id is None:
        required += [("user_id", user), ("user_password", password)]
    for field, value in required:
        if not isinstance(value, str) or not value:
            raise UserErrorException(
                f"{kind.method}: {field} is required for {kind.label} (a non-empty string)"
            )
    has_principal = {"tenant_id", "client_id", "client_secret"} <= set(principal)
    sql_login = bool(user and password)
    if datastore_type == "AzureSqlDatabase" and not (sql_login or has_principal or connection_id):
        raise UserErrorException(
            f"{kind.method}: datastore {datastore_name!r} needs username and password, or a "
            "service principal (tenant_id, client_id, client_secret)"
        )
    config = workspace._config
    existing = config.datastores.get(datastore_name)
    if existing is not None and not overwrite:
        extra = existing.model_extra or {}
        if (
            existing.datastore_type != datastore_type
            or extra.get("server_name") != server_name
            or extra.get("database_name") != database_name
        ):
            raise DatastoreError(
                f"datastore {datastore_name!r} is already registered to another store; "
                "pass overwrite=True to replace it"
            )
    host = server_host(server_name, endpoint, kind)
    port = _port(port_number, kind)
    fields: dict[str, Any] = {
        "url": f"{kind.scheme}://{host}:{port}/{database_name}",
        "datastore_type": datastore_type,
        "server_name": server_name,
        "database_name": database_name,
        "host": host,
        "port": port,
    }
    if endpoint:
        fields["endpoint"] = endpoint
    if enforce_ssl is not None:
        fields["enforce_ssl"] = bool(enforce_ssl)
    for key in ("tenant_id", "client_id", "authority_url", "resource_url"):
        if principal.get(key):
            fields[key] = principal[key]
    if connection_id is not None:
        if not isinstance(connection_id, str) or not connection_id:
            raise DatastoreError(f"{kind.method}: connection_id must be a non-empty string")
        fields["connection_id"] = connection_id
    secret = {
        k: v
        for k, v in (
            ("user", user),
            ("password", password),
            ("client_secret", principal.get("client_secret")),
        )
        if v
    }
    pending = None
    if secret:
        pending = write_credential_file(
            workspace._dir, f".{datastore_name}.pending-{uuid.uuid4().hex[:8]}", secret
        )
        fields["credential_file"] = pending
    try:
        if not skip_validation:
            _validate(workspace._dir, datastore_name, DatastoreConfig(**fields))
        if pending is not None:
            final = f"{CREDENTIALS_DIR}/{datastore_name}.json"
            os.replace(Path(workspace._dir) / pending, Path(workspace._dir) / final)
            fields["credential_file"] = final
            pending = None
    finally:
        if pending is not None:
            (Path(workspace._dir) / pending).unlink(missing_ok=True)
    config.datastores[datastore_name] = DatastoreConfig(**fields)
    workspace._save(config)
    if not secret:
        (Path(workspace._dir) / CREDENTIALS_DIR / f"{datastore_name}.json").unlink(missing_ok=True)
    return datastore_name  # the SDK wraps it as its Datastore (run-time code never imports it)


def _validate(workspace_dir: Path, name: str, entry: DatastoreConfig) -> None:
    """``SELECT 1`` through the real driver. Without the driver the datastore is still registered
    (the workers may have it where this machine does not), with a warning saying what is needed."""
    kind = SQL_KINDS[entry.datastore_type]
    if available_driver(kind) is None:
        warnings.warn(
            f"datastore {name!r} registered without checking the server: no {kind.scheme} driver "
            f"is installed here; install {kind.install} where its transfers run",
            stacklevel=4,
        )
        return
    from sqlalchemy import text

    engine = open_engine(workspace_dir, name, entry)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1")).fetchall()
    except Exception as exc:  # noqa: BLE001 - the driver's message, minus the password
        raise DatastoreError(
            f"datastore {name!r}: cannot reach database {entry.model_extra.get('database_name')!r} "
            f"on {entry.model_extra.get('host')}:{entry.model_extra.get('port')}: "
            f"{describe_error(exc, workspace_dir, name, entry)}"
        ) from None
    finally:
        engine.dispose()


def available_driver(kind: SqlKind) -> str | None:
    """The SQLAlchemy drivername of the first installed driver, or None."""
    for module, drivername in kind.drivers:
        if importlib.util.find_spec(module) is not None:
            return drivername
    return None


def connection_fields(workspace_dir: Path, name: str, entry: DatastoreConfig) -> dict[str, Any]:
    """Host, port, database and credentials: config, then the Airflow connection (if named),
    then the credential file, each overriding the one before (as for blob datastores)."""
    from mlpipe_provider.hooks.datastore import _connection, _credential_file

    extra = dict(entry.model_extra or {})
    fields = {k: extra.get(k) for k in ("host", "port", "database_name", "enforce_ssl")}
    fields.update({k: extra.get(k) for k in ("tenant_id", "client_id", "authority_url")})
    conn_id = extra.get("connection_id")
    if conn_id:
        conn = _connection(conn_id, name)
        for key, value in (
            ("host", conn.host),
            ("port", conn.port),
            ("database_name", getattr(conn, "schema", None)),
            ("user", conn.login),
            ("password", conn.password),
        ):
            if value:
                fields[key] = value
    if extra.get("credential_file"):
        fields.update(
            {
                k: v
                for k, v in _credential_file(workspace_dir, extra["credential_file"], name).items()
                if v
            }
        )
    return fields


def sqlalchemy_url(drivername: str, fields: dict[str, Any], kind: SqlKind) -> Any:
    from sqlalchemy.engine import URL

    query: dict[str, str] = {}
    if kind.scheme == "postgresql":
        query["sslmode"] = "require" if fields.get("enforce_ssl", True) else "prefer"
        query["connect_timeout"] = str(CONNECT_TIMEOUT_S)
    elif drivername == "mssql+pyodbc":
        query.update({"driver": ODBC_DRIVER, "Encrypt": "yes"})
        if fields.get("client_secret") and not fields.get("password"):
            query["Authentication"] = "ActiveDirectoryServicePrincipal"
    elif drivername == "mysql+pymysql":
        query["connect_timeout"] = str(CONNECT_TIMEOUT_S)
    user, password = fields.get("user"), fields.get("password")
    if not password and fields.get("client_secret"):
        user, password = fields.get("client_id"), fields.get("client_secret")
    return URL.create(
        drivername,
        username=user,
        password=password,
        host=fields.get("host"),
        port=int(fields["port"]) if fields.get("port") else None,
        database=fields.get("database_name"),
        query=query,
    )


def open_engine(workspace_dir: Path, name: str, entry: DatastoreConfig) -> Any:
    """A SQLAlchemy engine for datastore ``name``; a clear error naming the driver to install."""
    kind = SQL_KINDS.get(entry.datastore_type)
    if kind is None:
        raise DatastoreError(f"datastore {name!r} ({entry.datastore_type}) is not a SQL database")
    drivername = available_driver(kind)
    if drivername is None:
        raise DatastoreError(
            f"datastore {name!r} ({entry.datastore_type}) needs a {kind.scheme} driver for "
            f"SQLAlchemy, and none is installed on this worker: install {kind.install}"
        )
    from sqlalchemy import create_engine

    url = sqlalchemy_url(drivername, connection_fields(workspace_dir, name, entry), kind)
    return create_engine(url, pool_pre_ping=False, poolclass=_null_pool())


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool  # one connection per transfer; nothing lingers in a worker


def describe_error(
    exc: BaseException, workspace_dir: Path, name: str, entry: DatastoreConfig
) -> str:
    """The first line of a driver's error with the datastore's secrets masked."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    try:
        fields = connection_fields(workspace_dir, name, entry)
    except Exception:  # noqa: BLE001 - masking must not fail the report
        fields = {}
    for key in ("password", "client_secret"):
        if fields.get(key):
            first = first.replace(str(fields[key]), "***")
    return first[:300]


def not_a_file_store(name: str, entry: DatastoreConfig) -> DatastoreError:
    """What opening a SQL datastore as files says (a DataReference or an upload to it)."""
    return DatastoreError(
        f"datastore {name!r} is a SQL database ({entry.datastore_type}), which holds no files: "
        "read it with a SqlDataReference as the source of a DataTransferStep, which writes the "
        "query's result as CSV to a file datastore"
    )
