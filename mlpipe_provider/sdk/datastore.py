"""``Datastore``: v1's handle on stored data, backed by fsspec (a local folder by default)."""

from __future__ import annotations

from typing import Any

from mlpipe_provider.config import DatastoreConfig
from mlpipe_provider.datastores import DatastoreAccess, open_datastore
from mlpipe_provider.errors import DatastoreError


class Datastore:
    """A registered datastore. ``Datastore(ws, name)`` looks one up, as in v1.

    v1 programs sometimes pass a ``Datastore`` where a name is expected
    (``Datastore(ws, blob_store)``); that is accepted and means the same datastore.
    """

    def __init__(self, workspace: Any, name: str | Datastore | None = None):
        if isinstance(name, Datastore):
            name = name.name
        if name is None:
            name = workspace._config.default_datastore
        if not isinstance(name, str):
            raise DatastoreError(f"Datastore name must be a string, got {type(name).__name__}")
        if name not in workspace._config.datastores:
            known = ", ".join(sorted(workspace._config.datastores)) or "none"
            raise DatastoreError(f"unknown datastore {name!r} (workspace has: {known})")
        self.workspace = workspace
        self.name = name

    # --- v1 class methods ---------------------------------------------------------------------
    @staticmethod
    def get(workspace: Any, datastore_name: str) -> Datastore:
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace: Any) -> Datastore:
        return workspace.get_default_datastore()

    @staticmethod
    def register_local(workspace: Any, datastore_name: str, path: str) -> Datastore:
        """Register a local folder (or any fsspec URL) as a datastore (an mlpipe addition)."""
        config = workspace._config
        config.datastores[datastore_name] = DatastoreConfig(url=str(path), datastore_type="Local")
        workspace._save(config)
        return Datastore(workspace, datastore_name)

    @staticmethod
    def register_azure_blob_container(
        workspace: Any,
        datastore_name: str,
        container_name: str,
        account_name: str,
        sas_token: str | None = None,
        account_key: str | None = None,
        protocol: str | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        create_if_not_exists: bool = False,
        skip_validation: bool = False,
        blob_cache_timeout: int | None = None,
        grant_workspace_access: bool = False,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        *,
        connection_id: str | None = None,
    ) -> Datastore:
        """v1's registration of a blob container. The key or SAS token goes to a 0600 file in the
        workspace's ``.mlpipe/credentials/``, never into the config, a DAG or a log. An Airflow
        connection can hold it instead: ``connection_id=`` (an mlpipe addition) names a ``wasb``
        connection that is read wherever the data is touched (see docs/datastores.md)."""
        from mlpipe_provider.datastore_registration import register_azure_blob

        register_azure_blob(
            workspace,
            datastore_name=datastore_name,
            container_name=container_name,
            account_name=account_name,
            sas_token=sas_token,
            account_key=account_key,
            protocol=protocol,
            endpoint=endpoint,
            overwrite=overwrite,
            create_if_not_exists=create_if_not_exists,
            skip_validation=skip_validation,
            connection_id=connection_id,
        )
        return Datastore(workspace, datastore_name)

    @staticmethod
    def register_azure_data_lake_gen2(
        workspace: Any,
        datastore_name: str,
        filesystem: str,
        account_name: str,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        resource_url: str | None = None,
        authority_url: str | None = None,
        protocol: str | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        grant_workspace_access: bool = False,
        *,
        account_key: str | None = None,
        sas_token: str | None = None,
        connection_id: str | None = None,
        skip_validation: bool = False,
    ) -> Datastore:
        """v1's ADLS Gen2 registration, read and written through adlfs (``abfs://``). The service
        principal's secret goes to the 0600 credential file, never the config. mlpipe additions
        (keyword-only): ``account_key``/``sas_token`` (shared-key access, e.g. an emulator),
        ``connection_id`` (an Airflow ``wasb`` connection) and ``skip_validation``."""
        from mlpipe_provider.datastore_registration import register_azure_data_lake_gen2

        register_azure_data_lake_gen2(
            workspace,
            datastore_name=datastore_name,
            filesystem=filesystem,
            account_name=account_name,
            tenant_id=tenant_id,
            client_id=client_id,
            client_secret=client_secret,
            resource_url=resource_url,
            authority_url=authority_url,
            protocol=protocol,
            endpoint=endpoint,
            overwrite=overwrite,
            account_key=account_key,
            sas_token=sas_token,
            connection_id=connection_id,
            skip_validation=skip_validation,
        )
        return Datastore(workspace, datastore_name)

    @staticmethod
    def register_azure_file_share(
        workspace: Any,
        datastore_name: str,
        file_share_name: str,
        account_name: str,
        sas_token: str | None = None,
        account_key: str | None = None,
        protocol: str | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        create_if_not_exists: bool = False,
        skip_validation: bool = False,
    ) -> Datastore:
        """Not supported: no fsspec backend mlpipe ships reads Azure Files, and no emulator runs
        one to test against, so a share registered here could not be trusted to work."""
        from mlpipe_provider.errors import NotSupportedError

        raise NotSupportedError(
            f"Datastore.register_azure_file_share ({datastore_name!r}, share "
            f"{file_share_name!r}) is not supported by mlpipe: mount the share on every worker "
            "(SMB or NFS) and register the mount point with Datastore.register_local(ws, "
            f"{datastore_name!r}, '/mnt/{file_share_name}'), or copy the data into a blob "
            "container (azcopy) and use Datastore.register_azure_blob_container"
        )

    @staticmethod
    def register_azure_sql_database(
        workspace: Any,
        datastore_name: str,
        server_name: str,
        database_name: str,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        resource_url: str | None = None,
        authority_url: str | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        username: str | None = None,
        password: str | None = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        grant_workspace_access: bool = False,
        **kwargs: Any,
    ) -> Datastore:
        """v1's Azure SQL Database registration: a source for ``SqlDataReference`` in a
        ``DataTransferStep`` (docs/steps/data_transfer.md). Secrets go to the credential file."""
        from mlpipe_provider.sql_datastores import register_sql

        register_sql(
            workspace,
            "AzureSqlDatabase",
            datastore_name=datastore_name,
            server_name=server_name,
            database_name=database_name,
            user=username,
            password=password,
            port_number=None,
            endpoint=endpoint,
            overwrite=overwrite,
            principal={
                "tenant_id": tenant_id,
                "client_id": client_id,
                "client_secret": client_secret,
                "authority_url": authority_url,
                "resource_url": resource_url,
            },
            options=kwargs,
        )
        return Datastore(workspace, datastore_name)

    @staticmethod
    def register_azure_postgre_sql(
        workspace: Any,
        datastore_name: str,
        server_name: str,
        database_name: str,
        user_id: str,
        user_password: str,
        port_number: str | int | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        enforce_ssl: bool = True,
        **kwargs: Any,
    ) -> Datastore:
        """v1's Azure Database for PostgreSQL registration (any PostgreSQL server works)."""
        from mlpipe_provider.sql_datastores import register_sql

        register_sql(
            workspace,
            "AzurePostgreSql",
            datastore_name=datastore_name,
            server_name=server_name,
            database_name=database_name,
            user=user_id,
            password=user_password,
            port_number=port_number,
            endpoint=endpoint,
            overwrite=overwrite,
            enforce_ssl=enforce_ssl,
            options=kwargs,
        )
        return Datastore(workspace, datastore_name)

    @staticmethod
    def register_azure_my_sql(
        workspace: Any,
        datastore_name: str,
        server_name: str,
        database_name: str,
        user_id: str,
        user_password: str,
        port_number: str | int | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        **kwargs: Any,
    ) -> Datastore:
        """v1's Azure Database for MySQL registration (any MySQL server; needs PyMySQL)."""
        from mlpipe_provider.sql_datastores import register_sql

        register_sql(
            workspace,
            "AzureMySql",
            datastore_name=datastore_name,
            server_name=server_name,
            database_name=database_name,
            user=user_id,
            password=user_password,
            port_number=port_number,
            endpoint=endpoint,
            overwrite=overwrite,
            options=kwargs,
        )
        return Datastore(workspace, datastore_name)

    def set_as_default(self) -> None:
        self.workspace.set_default_datastore(self.name)

    # --- attributes -------------------------------------------------------------------------
    @property
    def _config(self) -> DatastoreConfig:
        return self.workspace._config.datastores[self.name]

    @property
    def datastore_type(self) -> str:
        return self._config.datastore_type

    @property
    def container_name(self) -> str | None:
        return self._config.container_name or self.name

    @property
    def account_name(self) -> str | None:
        return self._config.account_name

    def _field(self, key: str) -> Any:
        return (self._config.model_extra or {}).get(key)

    # v1's attributes of ADLS Gen2 and SQL datastores (None where they do not apply); secrets
    # (client_secret, passwords) are never attributes here: they live in the credential file
    @property
    def tenant_id(self) -> str | None:
        return self._field("tenant_id")

    @property
    def client_id(self) -> str | None:
        return self._field("client_id")

    @property
    def server_name(self) -> str | None:
        return self._field("server_name")

    @property
    def database_name(self) -> str | None:
        return self._field("database_name")

    @property
    def endpoint(self) -> str | None:
        return self._field("endpoint")

    @property
    def port_number(self) -> str | None:
        port = self._field("port")
        return None if port is None else str(port)

    @property
    def enforce_ssl(self) -> bool | None:
        return self._field("enforce_ssl")

    def _access(self) -> DatastoreAccess:
        return open_datastore(self.workspace._dir, self.workspace._config, self.name)

    # --- data movement ------------------------------------------------------------------------
    def upload(
        self,
        src_dir: str,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> Any:
        """Upload a local folder; returns a ``DataReference`` to ``target_path`` like v1."""
        from mlpipe_provider.sdk.data import DataReference

        count = self._access().upload_dir(src_dir, target_path, overwrite)
        if show_progress:
            print(f"Uploaded {count} file(s) to datastore {self.name!r} at {target_path or '/'}")
        return DataReference(self, path_on_datastore=target_path)

    def upload_files(
        self,
        files: list[str],
        relative_root: str | None = None,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> Any:
        import os
        import posixpath

        from mlpipe_provider.sdk.data import DataReference

        access = self._access()
        count = 0
        for file in files:
            rel = os.path.relpath(file, relative_root) if relative_root else os.path.basename(file)
            count += access.upload_file(
                file, posixpath.join(target_path or "", rel.replace(os.sep, "/")), overwrite
            )
        if show_progress:
            print(f"Uploaded {count} file(s) to datastore {self.name!r} at {target_path or '/'}")
        return DataReference(self, path_on_datastore=target_path)

    def download(
        self,
        target_path: str,
        prefix: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> int:
        count = self._access().download(target_path, prefix, overwrite)
        if show_progress:
            print(f"Downloaded {count} file(s) from datastore {self.name!r}")
        return count

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> Any:
        from mlpipe_provider.sdk.data import DataReference

        return DataReference(self, data_reference_name=data_reference_name, path_on_datastore=path)

    def as_mount(self) -> Any:
        return self.path().as_mount()

    def as_download(self, path_on_compute: str | None = None) -> Any:
        return self.path().as_download(path_on_compute=path_on_compute)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Datastore)
            and other.name == self.name
            and other.workspace == self.workspace
        )

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"Datastore(name={self.name!r}, type={self.datastore_type!r})"
