"""What every Firestore adapter shares: transient-error mapping and create-if-absent.

Firestore's transient statuses (unavailable, deadline, aborted after the client's
own retries) become :class:`TransientError`, so the entry point asks the platform
to retry; everything else propagates. ``create`` fails with AlreadyExists when the
document exists, which makes it an atomic claim (replay guard, webhook dedupe).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from google.api_core import exceptions as gexc

from facesearch.errors import TransientError

T = TypeVar("T")

# Imported dynamically on purpose: google-cloud-firestore ships type information, and a
# static import makes mypy resolve the ``google.cloud`` namespace from it, which then
# hides the untyped ``google.cloud.storage`` used by the blob adapter.
firestore: Any = importlib.import_module("google.cloud.firestore")

TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.Aborted,
    gexc.TooManyRequests,
    gexc.RetryError,
    ConnectionError,
)


def transient(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator: Firestore's retryable failures raise :class:`TransientError`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except TRANSIENT as exc:
            raise TransientError(f"firestore {fn.__name__}: {exc}") from exc
        except ValueError as exc:  # the client's "failed to commit transaction in N attempts"
            if isinstance(exc.__cause__, gexc.Aborted):
                raise TransientError(f"firestore {fn.__name__}: contended: {exc}") from exc
            raise

    return wrapper


def snapshot_data(snapshot: Any) -> dict[str, Any]:
    data = snapshot.to_dict()
    return dict(data) if data else {}


#: documents per batched read (``get_all``)
_GET_ALL_BATCH = 300


def existing_documents(
    client: Any, collection: Any, ids: Sequence[str], *, field_paths: list[str] | None = None
) -> Iterator[Any]:
    """The snapshots of those of ``ids`` that exist in ``collection`` (each id once), read in
    batches: the stores' batch lookups. ``field_paths=[]`` reads existence only."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _GET_ALL_BATCH):
        refs = [collection.document(i) for i in unique[start : start + _GET_ALL_BATCH]]
        yield from (s for s in client.get_all(refs, field_paths=field_paths) if s.exists)


@transient
def create_if_absent(document: Any, data: Mapping[str, Any]) -> bool:
    """Create the document; False when it already exists (someone claimed it first)."""
    try:
        document.create(dict(data))
    except (gexc.AlreadyExists, gexc.Conflict):
        return False
    return True
