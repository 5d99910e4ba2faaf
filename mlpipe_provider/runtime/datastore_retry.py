"""Datastore calls made by a running step, retried through short outages with a bounded backoff.

An object store that blinks (a restarted emulator, a throttled account, a dropped connection)
should cost a step a few seconds, not its run; one that stays down must fail the step with an
error that says which step, datastore and operation, and never holds a secret. Only transient
failures are retried: a missing object or a refused credential fails at once.

``MLPIPE_DATASTORE_RETRIES`` (default 5 attempts) and ``MLPIPE_DATASTORE_RETRY_BACKOFF_S``
(default 1 s, doubled after each failure, so 1+2+4+8 = 15 s of waiting at most by default) set the
budget. The Azure SDK's own retry policy (up to minutes per call with its defaults) is shortened
on the clients mlpipe opens, so that this budget is the one that holds.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.hooks.datastore import (  # noqa: F401 - shorten_sdk_retries re-exported
    redact,
    shorten_sdk_retries,
)

T = TypeVar("T")

DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF_S = 1.0
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT_NAMES = frozenset(
    {
        "ServiceRequestError",  # azure-core: could not connect
        "ServiceResponseError",  # azure-core: connection dropped mid-response
        "ServiceRequestTimeoutError",
        "ServiceResponseTimeoutError",
        "ClientConnectorError",  # aiohttp
        "ClientOSError",
        "ServerDisconnectedError",
        "ClientPayloadError",
        "EndpointConnectionError",  # botocore
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "RetryError",  # google-api-core
    }
)
_PERMANENT_OS = (
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def attempts() -> int:
    return max(1, int(os.environ.get("MLPIPE_DATASTORE_RETRIES", DEFAULT_ATTEMPTS)))


def backoff_s() -> float:
    return max(0.0, float(os.environ.get("MLPIPE_DATASTORE_RETRY_BACKOFF_S", DEFAULT_BACKOFF_S)))


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _PERMANENT_OS):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    for cls in type(exc).__mro__:
        if cls.__name__ in _TRANSIENT_NAMES:
            return True
    status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
    if isinstance(status, int) and status in _TRANSIENT_STATUS:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_transient(cause)


class Retrier:
    """Retries one step's calls on one datastore; ``__call__`` is a ``remote_digest.Caller``."""

    def __init__(self, step_name: str, store: Any, log: Any = None):
        self.step_name = step_name
        self.store = store
        self.log = log
        shorten_sdk_retries(store)

    def __call__(self, operation: str, path: str, fn: Callable[[], T]) -> T:
        tries = attempts()
        delay = backoff_s()
        started = time.monotonic()
        for attempt in range(1, tries + 1):
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified right below
                if not is_transient(exc):
                    raise
                detail = redact(f"{type(exc).__name__}: {exc}", self.store.options or {})
                if attempt == tries:
                    raise DatastoreError(
                        f"step {self.step_name!r}: {operation} of {path or '/'!r} on datastore "
                        f"{self.store.name!r} ({self.store.url}) failed {tries} times over "
                        f"{time.monotonic() - started:.1f} s; last error: {detail[:500]}"
                    ) from None
                if self.log is not None:
                    self.log.warning(
                        "mlpipe: step %r: %s of %r on datastore %r failed (%s); retry %d/%d in %.1f s",
                        self.step_name,
                        operation,
                        path,
                        self.store.name,
                        detail[:200],
                        attempt,
                        tries - 1,
                        delay,
                    )
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")
