"""Cloudinary delivery URLs: built with the SDK, fetched only from our cloud.

The webhook never forwards a URL it was sent. It builds the URL from *our*
cloud name and the notification's public_id + version with the SDK's URL
builder, asking Cloudinary for a bounded derivative (``c_limit`` to
``cloudinary_max_side_px``) so a 50-megapixel original costs us a ~2048 px
download. ``authenticated`` assets get a signed URL (``s--...--``) from the same
builder.

The ingest side fetches through :func:`cloudinary_fetcher`: the SSRF-safe
fetcher (https only, resolve once and connect to the vetted public address,
every redirect hop re-checked, byte cap, one deadline) restricted to our
delivery host, plus a path check that the URL stays inside our cloud on
``res.cloudinary.com`` (``/<cloud_name>/image/...``, or ``/video/...`` for the video
fetcher, no dot segments). Videos are fetched whole, without a transformation, under
their own byte cap and deadline (``FACESEARCH_VIDEO_FETCH_*``).
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable
from dataclasses import replace
from urllib.parse import unquote, urlsplit

from cloudinary.utils import cloudinary_url

from facesearch.config import Settings
from facesearch.errors import ConfigError, FetchFailed, TransientError, UrlNotAllowed
from facesearch.ingest.sources import image_id_for
from facesearch.net.fetch import FetchPolicy, fetch_image
from facesearch.storage.metadata import DEFAULT_COLLECTION

SHARED_DELIVERY_HOST = "res.cloudinary.com"
#: Formats the decoder reads; anything else (PSD, PDF, RAW...) is asked for as JPEG.
DECODABLE_FORMATS = frozenset(
    {"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff", "heic", "heif", "avif"}
)
#: Delivery types we can fetch: public, or signed-URL ("authenticated").
FETCHABLE_TYPES = frozenset({"upload", "authenticated"})


#: Cloudinary resource types we ingest; an image and a video may share a public_id
RESOURCE_TYPES = ("image", "video")
#: Video formats asked for as they are (anything else is asked for as MP4)
VIDEO_FORMATS = frozenset({"mp4", "mov", "m4v", "3gp", "webm", "mkv", "avi", "ts", "mts"})


def source_id(cloud_name: str, public_id: str, version: int, resource_type: str = "image") -> str:
    """The identity hashed into the image (or video) id (matches facesearch.ingest.sources).

    Videos get their own scheme: Cloudinary keeps images and videos apart, so the same
    public_id may name one of each.
    """
    scheme = "cloudinary" if resource_type == "image" else f"cloudinary-{resource_type}"
    return f"{scheme}://{cloud_name}/{public_id}#{version}"


def cloudinary_image_id(
    cloud_name: str,
    public_id: str,
    version: int,
    collection_id: str = DEFAULT_COLLECTION,
    resource_type: str = "image",
) -> str:
    """The image id (or, for ``resource_type="video"``, the video id) of an asset."""
    return image_id_for(source_id(cloud_name, public_id, version, resource_type), collection_id)


def event_key(cloud_name: str, public_id: str, version: int, resource_type: str = "image") -> str:
    """Fixed-length dedupe key (public_ids are free text; Firestore ids are not)."""
    identity = source_id(cloud_name, public_id, version, resource_type)
    return hashlib.sha256(identity.encode()).hexdigest()


def asset_key(cloud_name: str, public_id: str, resource_type: str = "image") -> str:
    """Ledger key of an asset across its versions (which version is current, and where).

    Cloudinary's public ids are unique per resource type: an image and a video may share one.
    """
    kind = "" if resource_type == "image" else f"{resource_type}\n"
    return hashlib.sha256(f"asset\n{kind}{cloud_name}\n{public_id}".encode()).hexdigest()


def require_cloud_name(settings: Settings) -> str:
    if not settings.cloudinary.cloud_name:
        raise ConfigError("FACESEARCH_CLOUDINARY_CLOUD_NAME is not set")
    return settings.cloudinary.cloud_name


def delivery_host(settings: Settings) -> str:
    """The one host we fetch from: the custom CNAME if configured, else res.cloudinary.com."""
    configured = settings.cloudinary.secure_distribution
    if not configured:
        return SHARED_DELIVERY_HOST
    return (urlsplit(f"//{configured}").hostname or configured).lower()


def delivery_url(
    settings: Settings,
    public_id: str,
    version: int,
    *,
    fmt: str | None = None,
    delivery_type: str = "upload",
    api_secret: str | None = None,
    resource_type: str = "image",
) -> str:
    """The https URL of an image derivative no larger than ``cloudinary_max_side_px`` on
    each side, or of a video as uploaded (in its own container when we read it, else MP4;
    no size transformation: Cloudinary transforms large videos only asynchronously)."""
    if delivery_type not in FETCHABLE_TYPES:
        raise ValueError(f"delivery type {delivery_type!r} cannot be fetched")
    if resource_type not in RESOURCE_TYPES:
        raise ValueError(f"resource type {resource_type!r} cannot be fetched")
    side = settings.cloudinary.max_side_px
    options: dict[str, object] = {
        "cloud_name": require_cloud_name(settings),
        "resource_type": resource_type,
        "type": delivery_type,
        "version": version,
        "secure": True,
        "format": fmt if fmt in DECODABLE_FORMATS else "jpg",
        "transformation": [{"width": side, "height": side, "crop": "limit"}],
    }
    if resource_type == "video":
        options["format"] = fmt if fmt in VIDEO_FORMATS else "mp4"
        del options["transformation"]
    if settings.cloudinary.secure_distribution:
        options.update(
            private_cdn=True, secure_distribution=settings.cloudinary.secure_distribution
        )
    if delivery_type == "authenticated":
        if not api_secret:
            raise ConfigError("signed delivery URLs need the Cloudinary API secret")
        options.update(sign_url=True, api_secret=api_secret)
    url, _ = cloudinary_url(public_id, **options)
    return str(url)


def check_delivery_url(url: str, settings: Settings, resource_type: str = "image") -> None:
    """Refuse any URL outside our cloud's delivery host and path (before fetching)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or host != delivery_host(settings):
        raise UrlNotAllowed(f"not a delivery URL of our Cloudinary cloud: host {host or '?'}")
    path = unquote(parts.path)
    if posixpath.normpath(path) != path or "/./" in path or "/../" in path:
        raise UrlNotAllowed("delivery URL path has dot segments")
    if resource_type not in RESOURCE_TYPES:
        raise UrlNotAllowed(f"resource type {resource_type!r} is not fetched")
    prefix = f"/{resource_type}/"
    if not settings.cloudinary.secure_distribution:
        prefix = f"/{require_cloud_name(settings)}/{resource_type}/"
    if not path.startswith(prefix):
        raise UrlNotAllowed("delivery URL is outside our Cloudinary cloud")


def fetch_policy(settings: Settings, resource_type: str = "image") -> FetchPolicy:
    """The production policy: only our delivery host, the byte cap and fetch deadline
    (an image's, or for videos ``FACESEARCH_VIDEO_FETCH_MAX_BYTES`` / ``_TIMEOUT_S``)."""
    policy = FetchPolicy.from_settings(settings, allowed_hosts=[delivery_host(settings)])
    if resource_type == "video":
        video = settings.video
        policy = replace(policy, max_bytes=video.fetch_max_bytes, timeout_s=video.fetch_timeout_s)
    return policy


def cloudinary_fetcher(
    settings: Settings, *, policy: FetchPolicy | None = None, resource_type: str = "image"
) -> Callable[[str], bytes]:
    """A ``UrlFetcher`` for ``facesearch.ingest.loader``: Cloudinary URLs and nothing else.

    Unreachable or failing delivery (timeouts, 5xx) is :class:`TransientError` so the
    ingest delivery is retried (bounded by the dead-letter policy); a URL outside the
    policy (:class:`UrlNotAllowed`) or an over-cap body (``ImageTooLarge``) is final.
    ``policy`` exists for tests (a local TLS server: its port, its CA, 127.0.0.1 exempt);
    production uses :func:`fetch_policy`. The host allow-list is ours either way.
    """
    active = policy or fetch_policy(settings, resource_type)
    active = replace(active, allowed_hosts=(delivery_host(settings),))

    def fetch(url: str) -> bytes:
        check_delivery_url(url, settings, resource_type)
        try:
            return fetch_image(url, active).data
        except FetchFailed as exc:
            raise TransientError(f"Cloudinary delivery failed: {exc.message}") from exc

    return fetch
