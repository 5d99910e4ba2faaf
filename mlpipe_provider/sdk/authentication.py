"""v1's authentication classes: bearer tokens from the workspace's Airflow server.

A v1 program builds an authentication object and sends its header to a published pipeline's
REST endpoint::

    auth = InteractiveLoginAuthentication()
    response = requests.post(published.endpoint, headers=auth.get_authentication_header(),
                             json={"ExperimentName": "nightly", "ParameterAssignments": {...}})

On Azure the token came from Azure AD. Here it comes from the Airflow server the workspace
config names (``airflow.url``), through its auth manager's token endpoint (``POST /auth/token``):
the same token Airflow's own API and the ``/mlpipe`` v1 routes accept. Which Airflow user it is:

* ``InteractiveLoginAuthentication``, ``AzureCliAuthentication``, ``MsiAuthentication``: the
  workspace's own login (``airflow.username``, its password from ``password_env`` or
  ``password_file``, never from the config itself). An interactive login with no stored password
  asks for it on a terminal.
* ``ServicePrincipalAuthentication``: the Airflow user the principal maps to in the config
  (``airflow.service_principals: {"<service_principal_id>": "<airflow user>"}``, else a user
  named like the principal), with ``service_principal_password`` as that user's password (pass
  it from an environment variable or a secret store, as v1's docs do).

No secret is written anywhere: passwords and tokens live in the object only, and its ``repr``
shows neither.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from typing import Any, NamedTuple

from mlpipe_provider.errors import UserErrorException

#: a token is renewed this long before it expires
_RENEW_BEFORE_S = 60.0


class AccessToken(NamedTuple):
    """What v1's ``get_token`` returned (``azure.core.credentials.AccessToken``'s shape)."""

    token: str
    expires_on: int


def _expiry(token: str) -> float:
    """The JWT's ``exp`` (not verified: the server verifies; this only decides when to renew)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(data["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return time.time() + 300


class AbstractAuthentication:
    """What every v1 authentication class shares: a cached token for one Airflow server."""

    def __init__(self, cloud: str | None = None) -> None:
        self._cloud = cloud
        self._workspace: Any = None
        self._token: str | None = None
        self._expires_on = 0.0
        self._token_url: str | None = None

    def _bind(self, workspace: Any) -> None:
        """``Workspace(auth=...)``: tokens come from this workspace's server from now on."""
        if self._workspace is None or self._workspace._dir != workspace._dir:
            self._workspace = workspace
            self._token = None

    def _server_workspace(self) -> tuple[Any, Any]:
        if self._workspace is None:
            from mlpipe_provider.sdk.workspace import Workspace

            self._workspace = Workspace.from_config()
        server = self._workspace._config.airflow
        if server is None:
            raise UserErrorException(
                f"{type(self).__name__}: workspace {self._workspace.name!r} names no Airflow "
                "server, so there is no token to get (runs submit to the embedded Airflow); "
                "start one with `mlpipe server up` or add an 'airflow' entry to its config.json"
            )
        return self._workspace, server

    def _login(self, workspace: Any, server: Any) -> tuple[str, str]:
        """(Airflow username, password) of this kind of authentication."""
        raise NotImplementedError

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """A bearer token from the server's ``POST /auth/token``; cached until shortly before it
        expires (``scopes`` are accepted as in v1 and ignored: Airflow's tokens have none)."""
        from mlpipe_provider.airflow_api import AirflowApiError, AirflowClient

        workspace, server = self._server_workspace()
        url = server.url.rstrip("/")
        fresh = self._token is not None and time.time() < self._expires_on - _RENEW_BEFORE_S
        if not fresh or self._token_url != url:
            username, password = self._login(workspace, server)
            try:
                self._token = AirflowClient(url, username, password).token()
            except AirflowApiError as exc:
                raise UserErrorException(
                    f"{type(self).__name__}: the Airflow server at {url} refused the login of "
                    f"user {username!r} (HTTP {exc.status}); check the user and password"
                ) from None
            self._expires_on = _expiry(self._token)
            self._token_url = url
        return AccessToken(self._token, int(self._expires_on))

    def get_authentication_header(self) -> dict[str, str]:
        """``{"Authorization": "Bearer <token>"}``, the header v1 programs send to REST endpoints."""
        return {"Authorization": f"Bearer {self.get_token().token}"}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _workspace_login(workspace: Any, server: Any, who: str) -> tuple[str, str]:
    from mlpipe_provider.airflow_api import read_password

    if not server.username:
        raise UserErrorException(
            f"{who}: the workspace's Airflow server config names no user (airflow.username); "
            "add one with its password_env or password_file"
        )
    password = read_password(
        workspace._dir, server.password_env, server.password_file, server.username
    )
    if password is None:
        raise UserErrorException(
            f"{who}: no password for Airflow user {server.username!r}: set airflow.password_env "
            "or airflow.password_file in the workspace config"
        )
    return server.username, password


class InteractiveLoginAuthentication(AbstractAuthentication):
    """The workspace's own Airflow login; asks for the password on a terminal when the config
    has none (``force=True`` always asks, like v1's forced re-login)."""

    def __init__(
        self,
        force: bool = False,
        tenant_id: str | None = None,
        cloud: str | None = None,
    ) -> None:
        super().__init__(cloud)
        self._force = force
        self._tenant_id = tenant_id

    def _login(self, workspace: Any, server: Any) -> tuple[str, str]:
        if not self._force:
            try:
                return _workspace_login(workspace, server, type(self).__name__)
            except UserErrorException:
                if not (server.username and sys.stdin.isatty()):
                    raise
        if not sys.stdin.isatty():
            raise UserErrorException(
                "InteractiveLoginAuthentication(force=True) needs a terminal to ask for the password"
            )
        import getpass

        username = server.username or input(f"Airflow user at {server.url}: ")
        return username, getpass.getpass(f"Password of {username!r} at {server.url}: ")


class AzureCliAuthentication(AbstractAuthentication):
    """v1 used the ``az login`` session; here it is the workspace's own Airflow login."""

    def __init__(self, cloud: str | None = None) -> None:
        super().__init__(cloud)

    def _login(self, workspace: Any, server: Any) -> tuple[str, str]:
        return _workspace_login(workspace, server, type(self).__name__)


class MsiAuthentication(AbstractAuthentication):
    """v1 used the machine's managed identity; here it is the workspace's own Airflow login
    (a deployment gives the machine that login through ``password_env`` or ``password_file``)."""

    def __init__(self, cloud: str | None = None, identity_config: dict | None = None) -> None:
        super().__init__(cloud)
        self._identity_config = identity_config

    def _login(self, workspace: Any, server: Any) -> tuple[str, str]:
        return _workspace_login(workspace, server, type(self).__name__)


class ServicePrincipalAuthentication(AbstractAuthentication):
    """A service principal, logged in as the Airflow user it maps to (see the module doc)."""

    def __init__(
        self,
        tenant_id: str,
        service_principal_id: str,
        service_principal_password: str,
        cloud: str = "AzureCloud",
        _enable_caching: bool = True,
    ) -> None:
        super().__init__(cloud)
        for field, value in (
            ("service_principal_id", service_principal_id),
            ("service_principal_password", service_principal_password),
        ):
            if not isinstance(value, str) or not value:
                raise UserErrorException(
                    f"ServicePrincipalAuthentication: {field} must be a non-empty string"
                )
        self._tenant_id = tenant_id
        self._service_principal_id = service_principal_id
        self._password = service_principal_password

    @property
    def service_principal_id(self) -> str:
        return self._service_principal_id

    def _login(self, workspace: Any, server: Any) -> tuple[str, str]:
        mapped = (server.service_principals or {}).get(self._service_principal_id)
        return mapped or self._service_principal_id, self._password

    def __repr__(self) -> str:
        return (
            f"ServicePrincipalAuthentication(service_principal_id={self._service_principal_id!r})"
        )
