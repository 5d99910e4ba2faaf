"""Conditional writes on S3: the service's own preconditions, through the client s3fs holds.

S3 has conditional requests on general purpose buckets: a PUT with ``If-None-Match: *`` creates
an object only if the key is free, a PUT or DELETE with ``If-Match: <etag>`` acts only while the
object still has that ETag; a refused precondition is ``412 PreconditionFailed`` (or ``409
ConditionalRequestConflict`` for two such requests in flight on one key). Each object here is one
small PutObject, so it appears whole.

The ETag of a single-part PUT is the MD5 of its bytes, so two writes of identical bytes have the
same ETag. That does not weaken the store: a replace conditioned on an ETag then replaces
exactly the bytes its caller read, and lease objects carry a heartbeat time and a holder, so
consecutive leases never have equal bytes.
"""

from __future__ import annotations

from typing import Any

from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.hooks.cloud_objects import CloudObjects
from mlpipe_provider.hooks.datastore import redact

# The codes S3 answers when a precondition does not hold (409: a concurrent conditional write on
# the same key won the race while this one was in flight).
REFUSED = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})


def _code(exc: Any) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code or str(status or "")


class S3Objects(CloudObjects):
    """ConditionalObjects on an s3fs filesystem (see hooks/object_store.py for the contract)."""

    def _run(self, what: str, path: str, operation: str, **params: Any) -> Any:
        """One S3 call on fsspec's loop: its response, or the ClientError it raised when that is
        a refused precondition or a missing key (the caller decides); anything else is a
        DatastoreError without secrets."""
        from botocore.exceptions import ClientError
        from fsspec.asyn import sync

        async def go() -> Any:
            await self.fs.set_session()
            client = await self.fs.get_s3(params.get("Bucket"))
            response = await getattr(client, operation)(**params)
            if "Body" in response:
                async with response["Body"] as stream:
                    response["Data"] = await stream.read()
            return response

        try:
            return sync(self.fs.loop, go)
        except ClientError as exc:
            code = _code(exc)
            if code in REFUSED or code in MISSING_KEY:
                return exc
            if code == "NoSuchBucket":
                raise DatastoreError(
                    f"datastore {self.datastore!r}: bucket {params.get('Bucket')!r} does not "
                    "exist (create it, or correct the datastore's url)"
                ) from None
            raise self._error(what, path, exc) from None
        except Exception as exc:  # noqa: BLE001 - what the service said, minus any secret
            raise self._error(what, path, exc) from None

    def _error(self, what: str, path: str, exc: BaseException) -> DatastoreError:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        return DatastoreError(
            f"datastore {self.datastore!r}: cannot {what} {path!r}: "
            f"{redact(first, self.options)[:300]}"
        )

    def read(self, path: str) -> tuple[bytes, str] | None:
        bucket, key = self._split(path)
        response = self._run("read", path, "get_object", Bucket=bucket, Key=key)
        if isinstance(response, Exception):
            return None
        return response["Data"], response["ETag"]

    def _put(self, path: str, data: bytes, **condition: str) -> str | None:
        bucket, key = self._split(path)
        response = self._run(
            "write", path, "put_object", Bucket=bucket, Key=key, Body=data, **condition
        )
        if isinstance(response, Exception):
            return None
        self.fs.invalidate_cache(path)
        return response["ETag"]

    def put_if_absent(self, path: str, data: bytes) -> str | None:
        return self._put(path, data, IfNoneMatch="*")

    def put_if_match(self, path: str, data: bytes, etag: str) -> str | None:
        return self._put(path, data, IfMatch=etag)

    def delete_if_match(self, path: str, etag: str) -> bool:
        bucket, key = self._split(path)
        response = self._run("delete", path, "delete_object", Bucket=bucket, Key=key, IfMatch=etag)
        self.fs.invalidate_cache(path)
        return not isinstance(response, Exception)

    def list(self, prefix: str) -> list[str]:
        self.fs.invalidate_cache(prefix)
        try:
            return sorted(self.fs.find(prefix))
        except FileNotFoundError:
            return []
        except Exception as exc:  # noqa: BLE001
            raise self._error("list", prefix, exc) from None
