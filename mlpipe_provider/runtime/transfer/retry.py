"""The one retry policy for datastore calls made by a running step.

An object store that blinks (a restarted emulator, a throttled account, a dropped connection)
should cost a step a few seconds, not its run; one that stays down must fail the step with an
error that says which step, datastore and operation, and never holds a secret. Only transient
failures are retried: a missing object or a refused credential fails at once.

``MLPIPE_DATASTORE_RETRIES`` (default 5 attempts) and ``MLPIPE_DATASTORE_RETRY_BACKOFF_S``
(default 1 s, doubled after each failure, each wait capped at 30 s) set the budget: 1+2+4+8 =
15 s of waiting by default. Each wait is stretched by up to a quarter at random, so workers that
met the same outage do not all come back at the same instant; it is never shorter than the
doubling says, so the budget is a floor an outage is given. The Azure SDK's own retry policy (up
to minutes per call with its defaults) is shortened on the clients mlpipe opens, so that this
budget is the one that holds.

Two front ends share that loop, because their callers report failures differently:

* ``Retrier`` (staging, datasets, reuse fingerprints): ``(operation, path, fn)`` calls on one
  datastore; a call that stays down fails with ``DatastoreError`` ("failed N times over S s");
* ``with_retries`` (the data-movement engine: copies and their checks): one call described by
  ``what``; a call that stays down, or fails for good at once, fails with ``TransferError``
  ("still failing after N attempt(s)"), and a copy that landed wrong is copied again.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mlpipe_provider.errors import DatastoreError, MlpipeError
from mlpipe_provider.hooks.datastore import redact, shorten_sdk_retries
from mlpipe_provider.runtime.transfer.errors import TransferError, TransferVerificationError

T = TypeVar("T")

DEFAULT_ATTEMPTS = 5
DEFAULT_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
JITTER = 0.25  # each wait is stretched by up to this fraction, never shortened
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


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try and how long to wait between tries (read from the environment
    when a retried call starts, so a test or an operator can change it between calls)."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff_s: float = DEFAULT_BACKOFF_S

    @classmethod
    def from_env(cls) -> RetryPolicy:
        return cls(attempts(), backoff_s())

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based)."""
        base = min(MAX_BACKOFF_S, self.backoff_s * (2 ** (attempt - 1)))
        return min(MAX_BACKOFF_S, base * (1 + JITTER * random.random())) if base else 0.0


def is_transient(exc: BaseException) -> bool:
    """A service or network hiccup that trying again can fix. Walks the cause chain: adlfs wraps
    upload failures in ``RuntimeError``."""
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


def retry_call(
    call: Callable[[], T],
    *,
    retryable: Callable[[Exception], bool],
    exhausted: Callable[[Exception, int, float], BaseException],
    permanent: Callable[[Exception], BaseException] = lambda exc: exc,
    warn: Callable[[Exception, int, int, float], None] | None = None,
) -> T:
    """The loop both front ends share: ``call()`` until it succeeds, an error is not
    ``retryable`` (raised as ``permanent`` maps it), or the attempts are spent (raised as
    ``exhausted(exc, attempts, seconds)`` maps it). A mapped error replaces the original
    ``from None``, so no unmasked traceback of a service client follows it into the task log."""
    policy = RetryPolicy.from_env()
    started = time.monotonic()
    for attempt in range(1, policy.attempts + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - classified right below
            if not retryable(exc):
                error = permanent(exc)
            elif attempt == policy.attempts:
                error = exhausted(exc, policy.attempts, time.monotonic() - started)
            else:
                delay = policy.delay(attempt)
                if warn is not None:
                    warn(exc, attempt, policy.attempts, delay)
                time.sleep(delay)
                continue
            if error is exc:
                raise
            raise error from None
    raise AssertionError("unreachable")  # pragma: no cover


# --- for datastore calls: (operation, path, fn) on one datastore -------------------------------


class Retrier:
    """Retries one step's calls on one datastore; ``__call__`` is a ``remote_digest.Caller``."""

    def __init__(self, step_name: str, store: Any, log: Any = None):
        self.step_name = step_name
        self.store = store
        self.log = log
        shorten_sdk_retries(store)

    def _detail(self, exc: BaseException) -> str:
        return redact(f"{type(exc).__name__}: {exc}", self.store.options or {})

    def __call__(self, operation: str, path: str, fn: Callable[[], T]) -> T:
        def exhausted(exc: Exception, tries: int, seconds: float) -> BaseException:
            return DatastoreError(
                f"step {self.step_name!r}: {operation} of {path or '/'!r} on datastore "
                f"{self.store.name!r} ({self.store.url}) failed {tries} times over "
                f"{seconds:.1f} s; last error: {self._detail(exc)[:500]}"
            )

        def warn(exc: Exception, attempt: int, tries: int, delay: float) -> None:
            if self.log is not None:
                self.log.warning(
                    "mlpipe: step %r: %s of %r on datastore %r failed (%s); retry %d/%d in %.1f s",
                    self.step_name,
                    operation,
                    path,
                    self.store.name,
                    self._detail(exc)[:200],
                    attempt,
                    tries - 1,
                    delay,
                )

        return retry_call(fn, retryable=is_transient, exhausted=exhausted, warn=warn)


# --- for the data-movement engine: one described call ------------------------------------------


def bound_sdk_retries(*stores: Any) -> None:
    """Let mlpipe's bounded retries, not the Azure SDK's minutes-long defaults, pace an outage."""
    for store in stores:
        if not store.is_local:
            shorten_sdk_retries(store)


def describe(exc: BaseException, stores: tuple[Any, ...]) -> str:
    """``exc`` on one line, every credential of ``stores`` masked, at most 800 characters."""
    text = f"{type(exc).__name__}: {exc}"
    for store in stores:
        text = redact(text, store.options)
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= 800 else text[:800] + " ..."


def _engine_retryable(exc: BaseException) -> bool:
    """Transient, or a copy that landed wrong (copying again can fix that too); mlpipe's own
    errors otherwise say something retrying cannot change."""
    if isinstance(exc, TransferVerificationError):
        return True
    if isinstance(exc, MlpipeError):
        return False
    return is_transient(exc)


def with_retries(
    call: Callable[[], T],
    *,
    what: str,
    stores: tuple[Any, ...],
    log: Any = None,
) -> T:
    """``call()``, retried with backoff while it fails transiently.

    ``what`` names the step, the datastore and the path; the final error carries it and the
    cause's message with every credential of ``stores`` masked, and is raised ``from None`` so
    no unmasked traceback of the service client follows it into the task log. mlpipe's own
    errors (a verification that keeps failing included) are raised as they are.
    """

    def permanent(exc: Exception) -> BaseException:
        if isinstance(exc, MlpipeError):
            return exc
        return TransferError(f"{what}: {describe(exc, stores)}")

    def exhausted(exc: Exception, tries: int, seconds: float) -> BaseException:
        if isinstance(exc, MlpipeError):
            return exc
        return TransferError(
            f"{what}: still failing after {tries} attempt(s): {describe(exc, stores)}"
        )

    def warn(exc: Exception, attempt: int, tries: int, delay: float) -> None:
        if log is not None and not isinstance(exc, MlpipeError):
            log.warning(
                "mlpipe: %s: attempt %d of %d failed (%s); retrying",
                what,
                attempt,
                tries,
                describe(exc, stores),
            )

    return retry_call(
        call, retryable=_engine_retryable, exhausted=exhausted, permanent=permanent, warn=warn
    )
