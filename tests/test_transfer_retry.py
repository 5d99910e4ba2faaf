"""The one retry policy of the data-movement engine (``runtime/transfer/retry.py``), without a
service: both front ends (``Retrier`` for datastore calls, ``with_retries`` for copies) retry the
same errors, as many times, and never wait less than the documented doubling."""

from __future__ import annotations

import time

import fsspec
import pytest

from mlpipe_provider.datastores import DatastoreAccess
from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.runtime.transfer.errors import TransferError, TransferVerificationError
from mlpipe_provider.runtime.transfer.retry import (
    MAX_BACKOFF_S,
    Retrier,
    RetryPolicy,
    with_retries,
)

SECRET = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="


@pytest.fixture
def store(tmp_path):
    return DatastoreAccess(
        name="disk",
        url=f"file://{tmp_path}",
        fs=fsspec.filesystem("file"),
        root=str(tmp_path),
        options={"account_key": SECRET},
    )


def failing(times: int, error: Exception):
    calls = []

    def call() -> str:
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise error
        return "done"

    return call, calls


def test_each_wait_is_the_doubling_stretched_by_at_most_a_quarter_and_capped():
    policy = RetryPolicy(attempts=10, backoff_s=0.5)
    for attempt in range(1, 10):
        floor = min(MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1))
        for _ in range(50):
            assert floor <= policy.delay(attempt) <= min(MAX_BACKOFF_S, floor * 1.25)
    assert RetryPolicy(attempts=3, backoff_s=0).delay(2) == 0


@pytest.mark.parametrize("front", ["retrier", "with_retries"])
def test_both_front_ends_retry_a_transient_error_with_the_same_budget(front, store, monkeypatch):
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRIES", "3")
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0.1")

    def run(call):
        if front == "retrier":
            return Retrier("s", store)("list", "p", call)
        return with_retries(call, what="step 's', copying p", stores=(store,))

    call, calls = failing(2, ConnectionResetError(f"reset; key={SECRET}"))
    assert run(call) == "done"
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.1 and calls[2] - calls[1] >= 0.2  # never shorter

    call, calls = failing(3, ConnectionResetError(f"reset; key={SECRET}"))
    expected = DatastoreError if front == "retrier" else TransferError
    with pytest.raises(expected) as caught:
        run(call)
    assert len(calls) == 3
    message = str(caught.value)
    assert SECRET not in message
    assert ("failed 3 times" if front == "retrier" else "after 3 attempt(s)") in message
    assert caught.value.__suppress_context__  # no unmasked service traceback attached


@pytest.mark.parametrize("front", ["retrier", "with_retries"])
def test_a_missing_file_is_not_retried(front, store, monkeypatch):
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRIES", "5")
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "5")
    call, calls = failing(5, FileNotFoundError("gone"))
    started = time.monotonic()
    if front == "retrier":
        with pytest.raises(FileNotFoundError):  # the caller decides what missing means
            Retrier("s", store)("read", "p", call)
    else:
        with pytest.raises(TransferError, match="^what: FileNotFoundError: gone$"):
            with_retries(call, what="what", stores=(store,))
    assert len(calls) == 1 and time.monotonic() - started < 1


def test_a_copy_that_landed_wrong_is_copied_again_then_reported_as_it_is(store, monkeypatch):
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRIES", "2")
    monkeypatch.setenv("MLPIPE_DATASTORE_RETRY_BACKOFF_S", "0")
    call, calls = failing(1, TransferVerificationError("landed wrong"))
    assert with_retries(call, what="w", stores=(store,)) == "done"
    call, calls = failing(2, TransferVerificationError("landed wrong"))
    with pytest.raises(TransferVerificationError, match="landed wrong"):
        with_retries(call, what="w", stores=(store,))
    assert len(calls) == 2
