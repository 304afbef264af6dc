"""Structured JSON logging in the shape Cloud Logging indexes.

Cloud Run forwards each stdout line; a JSON line with ``severity`` and
``message`` becomes a structured entry, and extra keys land in jsonPayload.
Pass ids through ``extra={"fields": {...}}`` or use :func:`log_fields`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facesearch.config import Settings

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}


#: Cloud Logging turns this key of a JSON line into the entry's labels
LABELS_KEY = "logging.googleapis.com/labels"


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``labels`` (e.g. env, region) go on every entry."""

    def __init__(self, labels: dict[str, str] | None = None) -> None:
        super().__init__()
        self.labels = {k: v for k, v in (labels or {}).items() if v}

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        if self.labels:
            entry[LABELS_KEY] = self.labels
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(
    level: str = "INFO", *, json_output: bool = True, labels: dict[str, str] | None = None
) -> None:
    """Install one stdout handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_facesearch", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout if json_output else sys.stderr)
    handler._facesearch = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter(labels) if json_output else logging.Formatter("%(levelname)s %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level.upper())


def log_fields(**fields: Any) -> dict[str, Any]:
    """``logger.info("msg", extra=log_fields(image_id=...))``."""
    return {"fields": fields}


def configure_for(settings: Settings) -> None:
    """:func:`configure` from settings: level, format, and env/region labels."""
    configure(
        settings.log_level,
        json_output=settings.log_json,
        labels={"env": settings.env, "region": settings.region or ""},
    )
