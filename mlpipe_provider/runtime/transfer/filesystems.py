"""What kind of filesystem an fsspec instance is, as far as copying and checking care."""

from __future__ import annotations

from typing import Any

from mlpipe_provider.hashing import DIGEST_PREFIX

DIGEST_METADATA_KEY = "mlpipe_blake3"  # Azure metadata names must be C# identifiers


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, (tuple, list)) else (protocol,)


def is_local(fs: Any) -> bool:
    return bool({"file", "local"} & set(_protocols(fs)))


def is_object_store(fs: Any) -> bool:
    """Folders there are only name prefixes: nothing to create (adlfs would even create a
    container that was deleted), and an object is committed whole when its write completes."""
    return bool({"az", "abfs", "abfss", "s3", "s3a", "gs", "gcs"} & set(_protocols(fs)))


def is_azure_blob(fs: Any) -> bool:
    return bool({"az", "abfs"} & set(_protocols(fs))) and hasattr(fs, "service_client")


def metadata_digest(info: dict[str, Any]) -> str | None:
    value = (info.get("metadata") or {}).get(DIGEST_METADATA_KEY)
    return value if isinstance(value, str) and value.startswith(DIGEST_PREFIX) else None
