"""The one policy for tests that need something this machine may lack (docs/testing.md).

A developer's machine often has no Docker engine, PostgreSQL, Node or Chromium, and the tests that
need one should say so and skip rather than fail. CI installs every one of them and must never go
green by skipping: ``.ci/run`` exports ``MLPIPE_REQUIRE_<NAME>=1`` for each, and then a missing
service is a test *failure* that names the variable. Every such check goes through
:func:`require` (or :func:`unavailable`), so the policy is written once.

Each service here is also a pytest marker of the same name (pyproject.toml), so
``pytest -m "not docker"`` or ``pytest -m azurite`` selects by what a test needs.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

# marker name -> the variable that turns "skip" into "fail". The names are the ones .ci/run sets.
REQUIRE_ENV: dict[str, str] = {
    "docker": "MLPIPE_REQUIRE_DOCKER",
    "azurite": "MLPIPE_REQUIRE_AZURITE",
    "s3": "MLPIPE_REQUIRE_S3",
    "gcs": "MLPIPE_REQUIRE_GCS",
    "postgres": "MLPIPE_REQUIRE_POSTGRES",
    "celery": "MLPIPE_REQUIRE_CELERY_POSTGRES",
    "mlflow": "MLPIPE_REQUIRE_MLFLOW",
    "chromium": "MLPIPE_REQUIRE_CHROMIUM",
    "compose": "MLPIPE_REQUIRE_COMPOSE",
}


def required(service: str) -> bool:
    """True where this run must not skip ``service`` (``MLPIPE_REQUIRE_<NAME>=1``)."""
    return os.environ.get(REQUIRE_ENV[service]) == "1"


def unavailable(service: str, reason: str) -> NoReturn:
    """Skip the test because ``service`` is missing, or fail it where the run requires it."""
    if required(service):
        pytest.fail(f"{REQUIRE_ENV[service]}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def require(service: str, missing: str | None) -> None:
    """Go on when ``missing`` is None; otherwise :func:`unavailable` with ``missing`` as reason."""
    if missing is not None:
        unavailable(service, missing)
