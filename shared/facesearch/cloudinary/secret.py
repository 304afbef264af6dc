"""Where the Cloudinary API secret comes from: settings locally, Secret Manager in the cloud.

The cloud secret is re-read at most every :data:`SECRET_REFRESH_S` (runtime
contract: <= 5 min), so a rotation needs no redeploy. After a rotation the new
and the previous secret are both accepted until the next refresh after that, so
notifications Cloudinary signed just before the switch still verify. A failed
refresh keeps the last good secret (a Secret Manager hiccup must not turn every
notification into a 401); only a failing *first* load is an error, and that one
is transient (503: Cloudinary retries).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable

from facesearch.auth.keys import SECRET_MANAGER_URL
from facesearch.cloudinary.settings import CloudinarySettings
from facesearch.errors import ConfigError, TransientError
from facesearch.logs import log_fields

logger = logging.getLogger(__name__)

SECRET_REFRESH_S = 300.0
SECRET_TIMEOUT_S = 10.0


class StaticSecrets:
    """A fixed secret (local mode, tests)."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ConfigError("the Cloudinary API secret is empty")
        self._secrets = (secret,)

    def __call__(self) -> tuple[str, ...]:
        return self._secrets


class RefreshingSecret:
    """The current (and, right after a rotation, the previous) secret from a loader."""

    def __init__(
        self,
        load: Callable[[], str],
        *,
        source: str,
        refresh_s: float = SECRET_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._source = source
        self._refresh_s = refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self._loaded_at = float("-inf")

    def __call__(self) -> tuple[str, ...]:
        with self._lock:
            if not self._secrets or self._clock() - self._loaded_at >= self._refresh_s:
                self._reload()
            return self._secrets

    def _reload(self) -> None:
        now = self._clock()
        try:
            secret = self._load().strip()
            if not secret:
                raise ConfigError(f"{self._source} is empty")
        except Exception as exc:
            self._loaded_at = now  # back off: one attempt per refresh period, not per request
            if not self._secrets:
                raise TransientError(
                    f"cannot load the Cloudinary secret from {self._source}"
                ) from exc
            logger.warning(
                "Cloudinary secret refresh failed; keeping the previous one",
                extra=log_fields(source=self._source, error=type(exc).__name__),
            )
            return
        previous = self._secrets[:1]
        self._secrets = (secret, *(p for p in previous if p != secret))
        self._loaded_at = now


def secret_manager_text(secret_name: str) -> Callable[[], str]:
    """Read ``<secret_name>/versions/latest`` as text over REST (google-auth, no extra package)."""

    def load() -> str:
        import google.auth
        from google.auth.transport.requests import AuthorizedSession

        credentials, _ = google.auth.default(
            scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
        response = session.get(
            SECRET_MANAGER_URL.format(name=secret_name), timeout=SECRET_TIMEOUT_S
        )
        response.raise_for_status()
        return base64.b64decode(response.json()["payload"]["data"]).decode("utf-8")

    return load


def secrets_from_settings(settings: CloudinarySettings) -> Callable[[], tuple[str, ...]]:
    """Secret Manager when ``cloudinary_secret_name`` is set, else ``cloudinary_api_secret``."""
    if settings.secret_name:
        return RefreshingSecret(
            secret_manager_text(settings.secret_name),
            source=settings.secret_name,
        )
    if settings.api_secret is not None:
        return StaticSecrets(settings.api_secret.get_secret_value())
    raise ConfigError(
        "the Cloudinary webhook needs FACESEARCH_CLOUDINARY_SECRET_NAME "
        "(or FACESEARCH_CLOUDINARY_API_SECRET locally)"
    )
