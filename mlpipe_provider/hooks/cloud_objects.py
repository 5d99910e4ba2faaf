"""What the three cloud backends of the output store share: a filesystem, a datastore name for
errors, and splitting a path into its bucket (or container) and key.

Kept apart from hooks/object_store.py so the S3 and GCS modules can build on it without importing
the module that imports them.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.errors import DatastoreError


class CloudObjects:
    """Base of ``AzureBlobObjects``, ``S3Objects`` and ``GcsObjects``: conditional operations
    are atomic on the service itself, so every subclass is ``strict``."""

    strict = True
    #: what the service calls the top level of a path, for error messages
    bucket_word = "bucket"

    def __init__(self, fs: Any, datastore: str, options: dict[str, Any]):
        self.fs = fs
        self.datastore = datastore
        self.options = options

    def _split(self, path: str) -> tuple[str, str]:
        bucket, key, _ = self.fs.split_path(path)
        if not bucket or not key:
            raise DatastoreError(
                f"datastore {self.datastore!r}: {path!r} is not an object in a {self.bucket_word}"
            )
        return bucket, key
