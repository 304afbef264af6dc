"""Request authentication: HMAC signatures, key rings with rotation, the replay guard.

Clients call :func:`sign_request`; the composition root
(:mod:`facesearch.backends`) builds one :class:`Verifier` per instance from a
key ring and a nonce store (:mod:`facesearch.storage.nonces`).
"""

from __future__ import annotations

from facesearch.auth.keys import KeyRing, RefreshingKeyRing, StaticKeyRing, secret_manager_loader
from facesearch.auth.signing import SIGNATURE_HEADERS, SigningKey, sign_request
from facesearch.auth.verify import Verified, Verifier

__all__ = [
    "SIGNATURE_HEADERS",
    "KeyRing",
    "RefreshingKeyRing",
    "SigningKey",
    "StaticKeyRing",
    "Verified",
    "Verifier",
    "secret_manager_loader",
    "sign_request",
]
