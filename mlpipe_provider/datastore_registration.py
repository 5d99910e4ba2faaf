"""Registering remote datastores: what goes into the config, and where the secret goes instead.

The config file is meant to be committed, mounted into containers and printed in bug reports, so
it holds only where the data is. A key or SAS token given to ``register_azure_blob_container``
(or a service principal's secret given to ``register_azure_data_lake_gen2``, which is the same
Blob service to adlfs) is written to ``credentials/<datastore>.json`` (mode 0600) beside it and
referenced by name. SQL datastores register in ``sql_datastores.py`` the same way.
"""

from __future__ import annotations

import ipaddress
import json
import os
import uuid
from pathlib import Path
from typing import Any

from mlpipe_provider.config import DatastoreConfig
from mlpipe_provider.errors import DatastoreError

CREDENTIALS_DIR = "credentials"
DEFAULT_ENDPOINT = "core.windows.net"


def blob_account_url(account_name: str, protocol: str | None, endpoint: str | None) -> str:
    """v1 builds ``{protocol}://{account}.blob.{endpoint}``. An endpoint that is a host:port or an
    IP address is an emulator (Azurite) or a private gateway, which address accounts by path."""
    protocol = protocol or "https"
    endpoint = endpoint or DEFAULT_ENDPOINT
    host = endpoint.split(":", 1)[0]
    path_style = host == "localhost" or ":" in endpoint
    try:
        ipaddress.ip_address(host)
        path_style = True
    except ValueError:
        pass
    if path_style:
        return f"{protocol}://{endpoint}/{account_name}"
    return f"{protocol}://{account_name}.blob.{endpoint}"


def write_credential_file(workspace_dir: Path, datastore_name: str, secret: dict[str, Any]) -> str:
    """Write the secret with mode 0600 from the start (no window where it is world-readable)."""
    folder = Path(workspace_dir) / CREDENTIALS_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    relative = f"{CREDENTIALS_DIR}/{datastore_name}.json"
    path = Path(workspace_dir) / relative
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(secret, handle)
    os.replace(tmp, path)
    return relative


def _container_exists(fs: Any, container: str) -> bool:
    """Ask the service, listing at most one blob (what a container SAS with list rights may do).
    adlfs's own ``exists`` answers True when the credentials are refused, which would let a wrong
    key register silently."""
    if not hasattr(fs, "service_client"):
        return bool(fs.exists(container))
    from azure.core.exceptions import ResourceNotFoundError
    from fsspec.asyn import sync

    async def probe() -> bool:
        async with fs.service_client.get_container_client(container) as client:
            try:
                async for _ in client.list_blobs(results_per_page=1):
                    break
            except ResourceNotFoundError:
                return False
            return True

    return sync(fs.loop, probe)


def _validate(workspace: Any, name: str, entry: DatastoreConfig, create: bool) -> None:
    from mlpipe_provider.datastores import open_datastore_config
    from mlpipe_provider.hooks.datastore import redact

    access = open_datastore_config(workspace._dir, name, entry)
    container = entry.container_name
    try:
        exists = _container_exists(access.fs, container)
        if not exists and create:
            access.fs.mkdir(container)
        elif not exists:
            raise DatastoreError(
                f"container {container!r} does not exist in account {entry.account_name!r} "
                "(pass create_if_not_exists=True to create it)"
            )
    except DatastoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - report what the service said, minus secrets
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        raise DatastoreError(
            f"datastore {name!r}: cannot reach container {container!r}: "
            f"{redact(first, access.options)[:300]}"
        ) from None


def register_azure_blob(
    workspace: Any,
    *,
    datastore_name: str,
    container_name: str,
    account_name: str,
    sas_token: str | None,
    account_key: str | None,
    protocol: str | None,
    endpoint: str | None,
    overwrite: bool,
    create_if_not_exists: bool,
    skip_validation: bool,
    connection_id: str | None = None,
) -> str:
    return _register_azure_storage(
        workspace,
        method="register_azure_blob_container",
        datastore_type="AzureBlob",
        scheme="az",
        container_field="container_name",
        datastore_name=datastore_name,
        container_name=container_name,
        account_name=account_name,
        secret={"account_key": account_key, "sas_token": sas_token},
        public={},
        protocol=protocol,
        endpoint=endpoint,
        overwrite=overwrite,
        create_if_not_exists=create_if_not_exists,
        skip_validation=skip_validation,
        connection_id=connection_id,
    )


def register_azure_data_lake_gen2(
    workspace: Any,
    *,
    datastore_name: str,
    filesystem: str,
    account_name: str,
    tenant_id: str | None,
    client_id: str | None,
    client_secret: str | None,
    resource_url: str | None,
    authority_url: str | None,
    protocol: str | None,
    endpoint: str | None,
    overwrite: bool,
    account_key: str | None = None,
    sas_token: str | None = None,
    connection_id: str | None = None,
    skip_validation: bool = False,
) -> str:
    """ADLS Gen2 through adlfs (``abfs://``), which speaks the Blob API to a Gen2 account: the
    same service, so a hierarchical-namespace account and an emulator's blob endpoint both work.
    The service principal's ``client_secret`` goes to the 0600 credential file; its tenant and
    client ids are not secrets and stay in the config, where ``hooks/datastore.py`` reads them."""
    principal = [v for v in (tenant_id, client_id, client_secret) if v]
    if principal and len(principal) != 3:
        raise DatastoreError(
            f"register_azure_data_lake_gen2: datastore {datastore_name!r}: a service principal "
            "needs tenant_id, client_id and client_secret together"
        )
    public = {
        "tenant_id": tenant_id,
        "client_id": client_id,
        "resource_url": resource_url,
        "authority_url": authority_url,
    }
    return _register_azure_storage(
        workspace,
        method="register_azure_data_lake_gen2",
        datastore_type="AzureDataLakeGen2",
        scheme="abfs",
        container_field="filesystem",
        datastore_name=datastore_name,
        container_name=filesystem,
        account_name=account_name,
        secret={"client_secret": client_secret, "account_key": account_key, "sas_token": sas_token},
        public={k: v for k, v in public.items() if v},
        protocol=protocol,
        endpoint=endpoint,
        overwrite=overwrite,
        create_if_not_exists=False,
        skip_validation=skip_validation,
        connection_id=connection_id,
    )


def _register_azure_storage(
    workspace: Any,
    *,
    method: str,
    datastore_type: str,
    scheme: str,
    container_field: str,
    datastore_name: str,
    container_name: str,
    account_name: str,
    secret: dict[str, str | None],
    public: dict[str, Any],
    protocol: str | None,
    endpoint: str | None,
    overwrite: bool,
    create_if_not_exists: bool,
    skip_validation: bool,
    connection_id: str | None,
) -> str:
    for field, value in (
        ("datastore_name", datastore_name),
        (container_field, container_name),
        ("account_name", account_name),
    ):
        if not isinstance(value, str) or not value:
            raise DatastoreError(f"{method}: {field} must be a non-empty string")
    config = workspace._config
    if datastore_name in config.datastores and not overwrite:
        existing = config.datastores[datastore_name]
        if existing.container_name != container_name or existing.account_name != account_name:
            raise DatastoreError(
                f"datastore {datastore_name!r} is already registered to another container; "
                "pass overwrite=True to replace it"
            )
    fields: dict[str, Any] = {
        "url": f"{scheme}://{container_name}",
        "datastore_type": datastore_type,
        "container_name": container_name,
        "account_name": account_name,
        "account_url": blob_account_url(account_name, protocol, endpoint),
        **public,
    }
    if connection_id is not None:
        if not isinstance(connection_id, str) or not connection_id:
            raise DatastoreError(f"{method}: connection_id must be a non-empty string")
        fields["connection_id"] = connection_id
    secret = {k: v for k, v in secret.items() if v}
    pending = None
    if secret:
        # Under a temporary name until the container answered: a failed registration must not
        # replace the working key of a datastore registered earlier under the same name.
        pending = write_credential_file(
            workspace._dir, f".{datastore_name}.pending-{uuid.uuid4().hex[:8]}", secret
        )
        fields["credential_file"] = pending
    try:
        if create_if_not_exists or not skip_validation:
            _validate(workspace, datastore_name, DatastoreConfig(**fields), create_if_not_exists)
        if pending is not None:
            final = f"{CREDENTIALS_DIR}/{datastore_name}.json"
            os.replace(Path(workspace._dir) / pending, Path(workspace._dir) / final)
            fields["credential_file"] = final
            pending = None
    finally:
        if pending is not None:
            (Path(workspace._dir) / pending).unlink(missing_ok=True)
    entry = DatastoreConfig(**fields)
    config.datastores[datastore_name] = entry
    workspace._save(config)
    if not secret:  # a key registered earlier under this name is no longer referenced
        (Path(workspace._dir) / CREDENTIALS_DIR / f"{datastore_name}.json").unlink(missing_ok=True)
    return datastore_name  # the SDK wraps it as its Datastore (run-time code never imports it)
