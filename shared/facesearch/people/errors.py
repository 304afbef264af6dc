"""Typed errors of the people feature (all :class:`facesearch.errors.FaceSearchError`)."""

from __future__ import annotations

from facesearch.errors import FaceSearchError, PreconditionFailed


class StaleRead(PreconditionFailed):
    """An apply's precondition failed: a record changed (or appeared) since it was read.

    The caller re-reads, re-decides and applies again; the engine does so itself up
    to ``apply_attempts`` times.
    """

    code = "stale-read"


class CorrectionRefused(FaceSearchError):
    """A correction that would break a constraint or a limit (the message says which)."""

    code = "correction-refused"
    http_status = 409


class UndoRefused(FaceSearchError):
    """The entry cannot be undone: unknown, already undone, too old, or not undoable."""

    code = "undo-refused"
    http_status = 409


class ChangeSetInvalid(FaceSearchError):
    """A change set that breaks the store contract (a programming error, never retried)."""

    code = "changeset-invalid"
