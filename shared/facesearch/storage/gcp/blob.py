"""Cloud Storage blob store (google-cloud-storage), with typed errors and bounded retries.

Generations and ``if_generation_match`` are native GCS features, so this adapter
is a thin translation: google exceptions -> our typed errors, and one retry
policy of our own for transient failures (429, 5xx, connection resets).

The client's built-in retries are switched off (``retry=None``) so there is one
bounded policy instead of two nested ones; the client's default deadline (120 s)
would otherwise hold a Pub/Sub push request far longer than a redelivery costs.
Retrying a *conditional* write whose first attempt actually landed answers 412 on
the second attempt: callers that care (the index writer) re-read and notice that
their own change is already in place.

With ``STORAGE_EMULATOR_HOST`` set, ``storage.Client()`` talks to the emulator
with anonymous credentials; nothing here is emulator-specific.
"""

from __future__ import annotations

import builtins
import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exc
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from facesearch.errors import Forbidden, NotFound, PreconditionFailed, TransientError
from facesearch.storage.blob import BlobInfo, RetryPolicy, check_name

T = TypeVar("T")

_TRANSIENT_GOOGLE = (
    gexc.TooManyRequests,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.ServiceUnavailable,
    gexc.GatewayTimeout,
    gexc.RetryError,
)
_TRANSIENT_TRANSPORT = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    auth_exc.TransportError,
    ConnectionError,
    TimeoutError,
)


#: bytes fetched per ranged request of :meth:`GcsBlobStore.open_read`
READ_CHUNK_BYTES = 8 * 1024 * 1024


def is_transient(exc: BaseException) -> bool:
    """Errors where trying again later can succeed."""
    return isinstance(exc, _TRANSIENT_GOOGLE + _TRANSIENT_TRANSPORT)


class GcsBlobStore:
    """Objects under ``gs://bucket/prefix``; names are relative to the prefix."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        client: Callable[[], storage.Client],
        retry: RetryPolicy | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self._client = client
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s

    @property
    def url(self) -> str:
        return f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")

    def __repr__(self) -> str:
        return f"GcsBlobStore({self.url})"

    # --- operations --------------------------------------------------------------

    def read(self, name: str) -> tuple[bytes, int]:
        def op() -> tuple[bytes, int]:
            blob = self._blob(name)
            data = blob.download_as_bytes(timeout=self.timeout_s, retry=None)
            return data, self._generation(blob, name)

        return self._call(op, name, "read")

    def download_to_file(self, name: str, dest: Path) -> int:
        def op() -> int:
            blob = self._blob(name)
            blob.download_to_filename(str(dest), timeout=self.timeout_s, retry=None)
            return self._generation(blob, name)

        return self._call(op, name, "download")

    def open_read(self, name: str, *, generation: int | None = None) -> BinaryIO:
        def op() -> storage.Blob:
            blob = self._bucket().blob(self._key(name), generation=generation)
            blob.reload(timeout=self.timeout_s, retry=None)  # NotFound now; pins the version
            return blob

        blob = self._call(op, name, "open")
        # The reader's ranged downloads use the client's retry: a failed download inside
        # BlobReader.read has already moved its position, so retrying read() from outside
        # would skip bytes. A read that still fails is a TransientError (the chunk retries).
        reader = blob.open(
            "rb",
            chunk_size=READ_CHUNK_BYTES,
            retry=DEFAULT_RETRY.with_timeout(self.timeout_s),
            timeout=self.timeout_s,
        )
        return cast(BinaryIO, _MappedReader(reader, f"{self.url}/{name}"))

    def stat(self, name: str) -> int | None:
        def op() -> int | None:
            blob = self._bucket().get_blob(self._key(name), timeout=self.timeout_s, retry=None)
            return None if blob is None else self._generation(blob, name)

        return self._call(op, name, "stat")

    def write(self, name: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        return self._upload(name, "upload_from_string", data, if_generation_match)

    def write_file(self, name: str, src: Path, *, if_generation_match: int | None = None) -> int:
        return self._upload(name, "upload_from_filename", str(src), if_generation_match)

    def _upload(
        self, name: str, method: str, source: bytes | str, if_generation_match: int | None
    ) -> int:
        """One conditional upload (bytes or a file), our retries instead of the client's."""

        def op() -> int:
            blob = self._blob(name)
            getattr(blob, method)(
                source,
                content_type="application/octet-stream",
                if_generation_match=if_generation_match,
                timeout=self.timeout_s,
                retry=None,
            )
            return self._generation(blob, name)

        return self._call(op, name, "write")

    def list(self, prefix: str = "") -> list[BlobInfo]:
        return self._call(lambda: self._listed(prefix, versions=False), prefix, "list")

    def list_versions(self, prefix: str = "") -> builtins.list[BlobInfo]:
        return self._call(lambda: self._listed(prefix, versions=True), prefix, "list versions")

    def _listed(self, prefix: str, *, versions: bool) -> builtins.list[BlobInfo]:
        root = f"{self.prefix}/" if self.prefix else ""
        out = []
        for blob in self._get_client().list_blobs(
            self.bucket_name,
            prefix=root + prefix,
            versions=versions,
            timeout=self.timeout_s,
            retry=None,
        ):
            updated = blob.updated.timestamp() if blob.updated else 0.0
            out.append(
                BlobInfo(blob.name[len(root) :], int(blob.generation), blob.size or 0, updated)
            )
        out.sort(key=lambda info: (info.name, info.generation))
        return out

    def delete(self, name: str) -> None:
        def op() -> None:
            with contextlib.suppress(gexc.NotFound):
                self._blob(name).delete(timeout=self.timeout_s, retry=None)

        self._call(op, name, "delete")

    def delete_version(self, name: str, generation: int) -> None:
        def op() -> None:
            blob = self._bucket().blob(self._key(name), generation=generation)
            with contextlib.suppress(gexc.NotFound):
                blob.delete(timeout=self.timeout_s, retry=None)

        self._call(op, name, "delete version")

    # --- internals ---------------------------------------------------------------

    def _get_client(self) -> storage.Client:
        return self._client()

    def _bucket(self) -> storage.Bucket:
        return self._get_client().bucket(self.bucket_name)

    def _key(self, name: str) -> str:
        check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def _blob(self, name: str) -> storage.Blob:
        return self._bucket().blob(self._key(name))

    def _generation(self, blob: storage.Blob, name: str) -> int:
        if blob.generation is None:  # every GCS response carries it; be loud if not
            raise NotFound(f"{self.url}/{name}: response carried no generation")
        return int(blob.generation)

    def _call(self, op: Callable[[], T], name: str, verb: str) -> T:
        where = f"{verb} {self.url}/{name}"

        def mapped() -> T:
            try:
                return op()
            except gexc.PreconditionFailed as exc:
                raise PreconditionFailed(f"{where}: generation precondition failed") from exc
            except gexc.NotFound as exc:
                raise NotFound(f"{where}: not found") from exc
            except (gexc.Forbidden, gexc.Unauthorized) as exc:
                raise Forbidden(f"{where}: access denied ({exc.code})") from exc

        return self.retry.run(mapped, transient=is_transient, what=where)


class _MappedReader(io.RawIOBase):
    """A BlobReader whose failures are our typed errors (NotFound, TransientError)."""

    def __init__(self, reader: io.BufferedIOBase, where: str) -> None:
        super().__init__()
        self._reader = reader
        self._where = where

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._mapped(lambda: self._reader.read(-1 if size is None else size), "read")

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._mapped(lambda: self._reader.seek(offset, whence), "seek")

    def tell(self) -> int:
        return self._reader.tell()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._reader.close()
        super().close()

    def _mapped(self, op: Callable[[], T], verb: str) -> T:
        try:
            return op()
        except gexc.NotFound as exc:
            raise NotFound(f"{verb} {self._where}: the object is gone") from exc
        except (gexc.Forbidden, gexc.Unauthorized) as exc:
            raise Forbidden(f"{verb} {self._where}: access denied ({exc.code})") from exc
        except Exception as exc:
            if is_transient(exc):
                raise TransientError(f"{verb} {self._where}: {exc!r}") from exc
            raise
