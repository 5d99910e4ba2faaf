"""Conditional writes on Google Cloud Storage: generation preconditions, through gcsfs's session.

Every write of a GCS object gives it a new *generation* number, and the JSON API takes
``ifGenerationMatch`` on uploads and deletes: ``0`` means "only if there is no live object", any
other number "only while the live object has this generation"; a refused precondition is
``412``. The generation is therefore this backend's etag, and unlike an MD5 it changes on every
write, even of identical bytes. Each object is one single-request upload, so it appears whole.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from mlpipe_provider.errors import DatastoreError
from mlpipe_provider.hooks.cloud_objects import CloudObjects
from mlpipe_provider.hooks.datastore import redact


class GcsObjects(CloudObjects):
    """ConditionalObjects on a gcsfs filesystem (see hooks/object_store.py for the contract)."""

    def _error(self, what: str, path: str, exc: BaseException) -> DatastoreError:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        return DatastoreError(
            f"datastore {self.datastore!r}: cannot {what} {path!r}: "
            f"{redact(first, self.options)[:300]}"
        )

    def _missing_bucket(self, bucket: str) -> DatastoreError:
        return DatastoreError(
            f"datastore {self.datastore!r}: bucket {bucket!r} does not exist "
            "(create it, or correct the datastore's url)"
        )

    def _bucket_exists(self, bucket: str) -> bool:
        from fsspec.asyn import sync

        try:
            sync(self.fs.loop, self.fs._call, "GET", "b/{}", bucket, json_out=True)
        except FileNotFoundError:
            return False
        return True

    def _sync(self, what: str, path: str, coroutine_function: Any, *args: Any) -> Any:
        from fsspec.asyn import sync

        try:
            return sync(self.fs.loop, coroutine_function, *args)
        except (FileNotFoundError, FileExistsError, DatastoreError):
            raise  # gcsfs's words for 404 and 412: the callers decide what they mean
        except Exception as exc:  # noqa: BLE001 - what the service said, minus any secret
            raise self._error(what, path, exc) from None

    def read(self, path: str) -> tuple[bytes, str] | None:
        bucket, key = self._split(path)

        async def go() -> tuple[bytes, str]:
            headers, data = await self.fs._call("GET", "b/{}/o/{}", bucket, key, alt="media")
            # The generation of exactly the bytes downloaded (one request, no race with a write).
            return data, str(headers["X-Goog-Generation"])

        try:
            return self._sync("read", path, go)
        except FileNotFoundError:
            return None

    def _upload(self, path: str, data: bytes, generation: str) -> str | None:
        bucket, key = self._split(path)

        async def go() -> str:
            # One multipart upload (metadata + bytes), as gcsfs's own simple_upload sends, with
            # the precondition as a query parameter.
            metadata = json.dumps({"name": key}).encode()
            body = (
                b"--==0==\nContent-Type: application/json; charset=UTF-8\n\n"
                + metadata
                + b"\n--==0==\nContent-Type: application/octet-stream\n\n"
                + data
                + b"\n--==0==--"
            )
            result = await self.fs._call(
                "POST",
                f"{self.fs._location}/upload/storage/v1/b/{quote(bucket)}/o",
                uploadType="multipart",
                ifGenerationMatch=generation,
                headers={"Content-Type": 'multipart/related; boundary="==0=="'},
                data=body,
                json_out=True,
            )
            return str(result["generation"])

        try:
            etag = self._sync("write", path, go)
        except FileExistsError:  # 412: the precondition did not hold
            return None
        except FileNotFoundError:
            if not self._bucket_exists(bucket):
                raise self._missing_bucket(bucket) from None
            return None
        finally:
            self.fs.invalidate_cache(path)
        return etag

    def put_if_absent(self, path: str, data: bytes) -> str | None:
        return self._upload(path, data, "0")

    def put_if_match(self, path: str, data: bytes, etag: str) -> str | None:
        if not etag.isdigit() or etag == "0":
            return None  # not a generation this backend handed out
        return self._upload(path, data, etag)

    def delete_if_match(self, path: str, etag: str) -> bool:
        bucket, key = self._split(path)
        if not etag.isdigit() or etag == "0":
            return False

        async def go() -> None:
            # The precondition names the live object's generation; naming the generation too
            # makes a service that ignores delete preconditions (fake-gcs-server) still delete
            # only that generation, or answer 404 when it is gone or replaced.
            await self.fs._call(
                "DELETE", "b/{}/o/{}", bucket, key, generation=etag, ifGenerationMatch=etag
            )

        try:
            self._sync("delete", path, go)
        except (FileExistsError, FileNotFoundError):
            return False
        finally:
            self.fs.invalidate_cache(path)
        return True

    def list(self, prefix: str) -> list[str]:
        self.fs.invalidate_cache(prefix)
        try:
            return sorted(self.fs.find(prefix))
        except FileNotFoundError:
            return []
        except Exception as exc:  # noqa: BLE001
            raise self._error("list", prefix, exc) from None
