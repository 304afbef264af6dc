"""Who a console request is, per mode: a local session, or a verified Google identity.

* ``local``: the session cookie set by a one-time login link (:mod:`.tokens`).
* ``iap``: Identity-Aware Proxy in front of the service adds ``x-goog-iap-jwt-assertion``,
  an ES256 JWT signed by IAP. Only that signed assertion is trusted — never the plain
  ``x-goog-authenticated-user-email`` header, which anything that reaches the service
  directly could set.
* ``iam``: Cloud Run's invoker IAM check has admitted the request on its
  ``Authorization: Bearer`` ID token; the console verifies the token again (signature,
  audience, expiry) before reading the email from it, so a misconfigured public service
  does not turn into an open console.

Google's public keys are fetched from their well-known URLs and cached for an hour;
tests hand in their own keys.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from facesearch.errors import ConfigError

logger = logging.getLogger(__name__)

IAP_CERTS_URL = "https://www.gstatic.com/iap/verify/public_key"
IAM_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
IAP_HEADER = "X-Goog-IAP-JWT-Assertion"
IAP_ISSUER = "https://cloud.google.com/iap"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
CERTS_TTL_S = 3600.0

CertsLoader = Callable[[], Mapping[str, str]]


def fetch_certs(url: str) -> CertsLoader:
    """A loader of ``{kid: PEM}`` from ``url``, cached for :data:`CERTS_TTL_S`."""
    cache: dict[str, object] = {}
    lock = threading.Lock()

    def load() -> Mapping[str, str]:
        with lock:
            if cache and float(str(cache["at"])) + CERTS_TTL_S > time.time():
                return cache["certs"]  # type: ignore[return-value]
            with urllib.request.urlopen(url, timeout=10) as response:
                certs = json.loads(response.read())
            cache.update(certs=certs, at=time.time())
            return certs  # type: ignore[no-any-return]

    return load


@dataclass(frozen=True)
class Identity:
    subject: str  # the email (iap/iam) or the local session id
    mode: str


class GoogleIdentity:
    """Verifies the identity header of the ``iap`` or ``iam`` mode; anything else is nobody."""

    def __init__(self, mode: str, audience: str | None, certs: CertsLoader | None = None) -> None:
        if mode not in ("iap", "iam"):
            raise ValueError(f"not a Google identity mode: {mode}")
        if not audience:
            raise ConfigError(f"console mode {mode} needs FACESEARCH_CONSOLE_IAP_AUDIENCE")
        self.mode = mode
        self.audience = audience
        self._certs = certs or fetch_certs(IAP_CERTS_URL if mode == "iap" else IAM_CERTS_URL)

    def identify(self, headers: Mapping[str, str]) -> Identity | None:
        from google.auth import exceptions, jwt

        headers = {name.lower(): value for name, value in headers.items()}
        if self.mode == "iap":
            token = headers.get(IAP_HEADER.lower(), "")
            issuers: tuple[str, ...] = (IAP_ISSUER,)
        else:
            auth = headers.get("authorization", "")
            token = auth[7:] if auth.startswith("Bearer ") else ""
            issuers = GOOGLE_ISSUERS
        if not token or len(token) > 8192:
            return None
        try:
            claims = jwt.decode(  # type: ignore[no-untyped-call]
                token, certs=dict(self._certs()), audience=self.audience
            )
        except (ValueError, exceptions.GoogleAuthError) as exc:
            logger.warning("console identity refused: %s", type(exc).__name__)
            return None
        email = claims.get("email")
        if claims.get("iss") not in issuers or not isinstance(email, str) or not email:
            return None
        return Identity(email, self.mode)
