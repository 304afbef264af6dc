"""The query side's view of the index: opened on first use, re-read now and then.

Search, forget, stats and health all read the same snapshot; a failed refresh
keeps serving the snapshot we have (and says so in the log) rather than failing
queries because the bucket hiccupped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from facesearch.errors import ConfigError, FaceSearchError
from facesearch.index.reader import IndexReader
from facesearch.logs import log_fields

logger = logging.getLogger(__name__)

#: opens the index for the given embedder model id (the reader refuses another model)
ReaderFactory = Callable[[str], IndexReader]


class IndexView:
    """One reader per process, refreshed at most every ``refresh_interval_s``."""

    def __init__(
        self,
        open_reader: ReaderFactory | None,
        *,
        model_id: Callable[[], str],
        refresh_interval_s: float,
        reader: IndexReader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open = open_reader
        self._model_id = model_id
        self._interval = refresh_interval_s
        self._reader = reader
        self._lock = threading.Lock()
        self._clock = clock
        self._refreshed_at = clock()

    @property
    def reader(self) -> IndexReader:
        with self._lock:
            if self._reader is None:
                if self._open is None:
                    raise ConfigError("the query service was built without an index")
                self._reader = self._open(self._model_id())
                self._refreshed_at = self._clock()
            reader = self._reader
            due = self._clock() - self._refreshed_at >= self._interval
            if due:
                self._refreshed_at = self._clock()
        if due:
            try:
                reader.refresh()
            except FaceSearchError as exc:  # keep serving the snapshot we have
                logger.warning(
                    "index refresh failed", extra=log_fields(error_type=type(exc).__name__)
                )
        return reader

    @property
    def opened(self) -> IndexReader | None:
        """The reader if this view has opened one (never opens it)."""
        return self._reader

    def refresh(self) -> None:
        """Re-read the manifest now (after a local forget, so it shows at once)."""
        self.reader.refresh()
