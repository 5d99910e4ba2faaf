"""Credentials for remote datastores, resolved where the data is touched, never before.

A datastore's entry in the workspace config says *where* its data is (container, account, URL)
and *where its secret is kept*, never the secret itself: an Airflow Connection (``connection_id``),
a 0600 file beside the config (``credential_file``, written by
``Datastore.register_azure_blob_container``), or the environment the fsspec backends read
themselves (``AZURE_STORAGE_*``, ``AWS_*``, ``GOOGLE_APPLICATION_CREDENTIALS``). Resolving at run
time keeps keys out of DAG files, XCom and manifests, and lets a platform team rotate them
without recompiling anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlpipe_provider.errors import DatastoreError

SECRET_OPTION_KEYS = frozenset(
    {
        "account_key",
        "sas_token",
        "connection_string",
        "credential",
        "client_secret",
        "key",
        "secret",
        "token",
        "password",
    }
)


def _connection(conn_id: str, datastore: str = "?") -> Any:
    """An Airflow Connection, from the task's supervisor inside a task, else env/secrets/DB."""
    try:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(conn_id)
    except Exception as exc:  # noqa: BLE001 - outside a task the SDK may not reach the API
        env_value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        if env_value:
            from airflow.models.connection import Connection

            if env_value.lstrip().startswith("{"):
                return Connection.from_json(env_value, conn_id=conn_id)
            return Connection(conn_id=conn_id, uri=env_value)
        try:
            from airflow.models.connection import Connection

            return Connection.get_connection_from_secrets(conn_id)
        except Exception:  # noqa: BLE001
            raise DatastoreError(
                f"datastore {datastore!r} names Airflow connection {conn_id!r}, which is not "
                f"defined (define it in Airflow, or as AIRFLOW_CONN_{conn_id.upper()} in the "
                f"environment): {str(exc)[:200]}"
            ) from None


def _extra(conn: Any) -> dict[str, Any]:
    extra = getattr(conn, "extra_dejson", None)
    if extra is None:
        raw = getattr(conn, "extra", None) or "{}"
        extra = json.loads(raw) if isinstance(raw, str) else dict(raw)
    return dict(extra or {})


def _azure_from_connection(conn: Any) -> dict[str, Any]:
    """The fields of a ``wasb`` connection (login = account name, password = key, host = URL)."""
    extra = _extra(conn)
    found: dict[str, Any] = {}
    if conn.login:
        found["account_name"] = conn.login
    if conn.password:
        found["account_key"] = conn.password
    if conn.host:
        host = conn.host
        if "://" not in host:
            host = f"https://{host}"
        found["account_url"] = host
    for key in ("connection_string", "sas_token", "account_url", "account_name", "account_key"):
        if extra.get(key):
            found[key] = extra[key]
    return found


def _s3_from_connection(conn: Any) -> dict[str, Any]:
    extra = _extra(conn)
    found: dict[str, Any] = {}
    if conn.login:
        found["key"] = conn.login
    if conn.password:
        found["secret"] = conn.password
    client_kwargs = {}
    if extra.get("endpoint_url"):
        client_kwargs["endpoint_url"] = extra["endpoint_url"]
    if extra.get("region_name"):
        client_kwargs["region_name"] = extra["region_name"]
    if client_kwargs:
        found["client_kwargs"] = client_kwargs
    return found


def _gcs_from_connection(conn: Any) -> dict[str, Any]:
    """A ``google_cloud_platform`` connection's extra. ``endpoint_url`` (an emulator such as
    fake-gcs-server, a private endpoint) and ``anonymous`` (no credentials at all, as an emulator
    wants) are mlpipe's additions; gcsfs takes both."""
    extra = _extra(conn)
    found: dict[str, Any] = {}
    if extra.get("keyfile_dict"):
        keyfile = extra["keyfile_dict"]
        found["token"] = json.loads(keyfile) if isinstance(keyfile, str) else keyfile
    elif extra.get("key_path"):
        found["token"] = extra["key_path"]
    elif extra.get("anonymous"):
        found["token"] = "anon"
    if extra.get("project"):
        found["project"] = extra["project"]
    if extra.get("endpoint_url"):
        found["endpoint_url"] = extra["endpoint_url"]
    return found


def _credential_file(workspace_dir: Path, relative: str, datastore: str) -> dict[str, Any]:
    path = Path(workspace_dir) / relative
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise DatastoreError(
            f"datastore {datastore!r}: its credential file {relative!r} is missing from the "
            "workspace (register the datastore again, or name an Airflow connection)"
        ) from None
    except ValueError as exc:
        raise DatastoreError(
            f"datastore {datastore!r}: credential file {relative!r} is not JSON: {exc}"
        ) from None


def azure_storage_options(fields: dict[str, Any]) -> dict[str, Any]:
    """adlfs options from v1's fields. A custom ``account_url`` (an emulator such as Azurite, a
    sovereign cloud) needs a connection string, the one form adlfs takes an endpoint in."""
    if fields.get("connection_string"):
        return {"connection_string": fields["connection_string"]}
    account_name = fields.get("account_name")
    account_url = fields.get("account_url")
    if not (fields.get("account_key") or fields.get("sas_token")) and all(
        fields.get(k) for k in ("tenant_id", "client_id", "client_secret")
    ):
        return _service_principal_options(fields)
    if account_url and account_name and (fields.get("account_key") or fields.get("sas_token")):
        parts = [f"BlobEndpoint={account_url.rstrip('/')}"]
        if fields.get("account_key"):
            protocol = account_url.split("://", 1)[0] if "://" in account_url else "https"
            parts = [
                f"DefaultEndpointsProtocol={protocol}",
                f"AccountName={account_name}",
                f"AccountKey={fields['account_key']}",
                *parts,
            ]
        else:
            parts.append(f"SharedAccessSignature={fields['sas_token'].lstrip('?')}")
        return {"connection_string": ";".join(parts) + ";"}
    options: dict[str, Any] = {}
    for key in ("account_name", "account_key", "sas_token"):
        if fields.get(key):
            options[key] = fields[key]
    if account_url and "://" in account_url:
        options["account_host"] = account_url.split("://", 1)[1].rstrip("/")
    return options


def _service_principal_options(fields: dict[str, Any]) -> dict[str, Any]:
    """A service principal (v1's ADLS Gen2 registration): an azure-identity credential object, so
    ``authority_url`` (a sovereign cloud's login host) is honoured, which adlfs's own
    ``tenant_id``/``client_id``/``client_secret`` options would ignore."""
    from azure.identity.aio import ClientSecretCredential

    kwargs: dict[str, Any] = {}
    if fields.get("authority_url"):
        kwargs["authority"] = fields["authority_url"]
    options: dict[str, Any] = {
        "account_name": fields.get("account_name"),
        "credential": ClientSecretCredential(
            fields["tenant_id"], fields["client_id"], fields["client_secret"], **kwargs
        ),
    }
    account_url = fields.get("account_url")
    if account_url and "://" in account_url:
        options["account_host"] = account_url.split("://", 1)[1].rstrip("/")
    return options


def storage_options(workspace_dir: Path, name: str, config: Any, protocol: str) -> dict[str, Any]:
    """fsspec options for datastore ``name``: config fields + its secret from wherever it is kept."""
    extra = dict(config.model_extra or {})
    options = dict(extra.get("storage_options") or {})
    leaked = sorted(SECRET_OPTION_KEYS & set(options))
    if leaked:
        raise DatastoreError(
            f"datastore {name!r}: storage_options holds {', '.join(leaked)}; secrets belong in an "
            "Airflow connection (connection_id), a credential_file or the environment"
        )
    secret: dict[str, Any] = {}
    if extra.get("credential_file"):
        secret.update(_credential_file(workspace_dir, extra["credential_file"], name))
    conn_id = extra.get("connection_id")
    if protocol in ("az", "abfs", "abfss", "adl", "wasb", "wasbs"):
        fields: dict[str, Any] = {
            "account_name": config.account_name,
            "account_url": extra.get("account_url"),
            # a service principal's ids (ADLS Gen2); its secret is in the credential file
            **{k: extra.get(k) for k in ("tenant_id", "client_id", "authority_url")},
        }
        if conn_id:
            fields.update(
                {k: v for k, v in _azure_from_connection(_connection(conn_id, name)).items()}
            )
        fields.update({k: v for k, v in secret.items() if v})
        options.update(azure_storage_options({k: v for k, v in fields.items() if v}))
    elif protocol in ("s3", "s3a"):
        if conn_id:
            options.update(_s3_from_connection(_connection(conn_id, name)))
        options.update(secret)
    elif protocol in ("gs", "gcs"):
        if conn_id:
            options.update(_gcs_from_connection(_connection(conn_id, name)))
        options.update(secret)
    else:
        options.update(secret)
    return options


def redact(text: str, options: dict[str, Any]) -> str:
    """``text`` with every secret value of ``options`` masked, for error messages and logs."""
    for key, value in options.items():
        if isinstance(value, str) and value not in ("", "anon") and key in SECRET_OPTION_KEYS:
            text = text.replace(value, "***")
            if key == "connection_string":
                for part in value.split(";"):
                    k, _, v = part.partition("=")
                    if k in ("AccountKey", "SharedAccessSignature") and v:
                        text = text.replace(v, "***")
    return text


def shorten_sdk_retries(store: Any) -> None:
    """Make one Azure SDK call fail within seconds when the service is unreachable (its default
    policy waits 15 s and more between its own retries); mlpipe's retries take over from there.
    The policy object is shared by every client of that filesystem instance, all of mlpipe's."""
    client = getattr(store.fs, "service_client", None)
    policy = getattr(getattr(client, "_config", None), "retry_policy", None)
    if policy is None or getattr(policy, "_mlpipe_bounded", False):
        return
    # An unreachable service fails at once (mlpipe's backoff takes over); a throttled or
    # interrupted response still gets one quick retry of the SDK's own.
    limits = {"connect_retries": 0, "total_retries": 2, "read_retries": 1, "status_retries": 1}
    for name, limit in limits.items():
        if hasattr(policy, name):
            setattr(policy, name, min(int(getattr(policy, name) or 0), limit))
    if hasattr(policy, "initial_backoff"):
        policy.initial_backoff = min(float(policy.initial_backoff), 0.5)
    if hasattr(policy, "increment_base"):
        policy.increment_base = min(float(policy.increment_base), 2)
    if hasattr(policy, "random_jitter_range"):
        policy.random_jitter_range = min(float(policy.random_jitter_range), 0.2)
    policy._mlpipe_bounded = True
