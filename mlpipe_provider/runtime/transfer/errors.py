"""The errors the data-movement engine raises of its own."""

from __future__ import annotations

from mlpipe_provider.errors import MlpipeError


class TransferVerificationError(MlpipeError):
    """What landed at the destination is not what was read from the source."""


class TransferError(MlpipeError):
    """A copy failed for good (after retries, or at once for an error retrying cannot fix)."""
