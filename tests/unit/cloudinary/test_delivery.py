"""Delivery URLs and the Cloudinary-only fetcher: our cloud's host and path, https, capped.

The fetch tests run against a local TLS server standing in for the delivery
host. The policy they use is the production one plus exactly three test
allowances (that server's port, its throwaway CA, 127.0.0.1 exempt from the
public-address rule); plain http stays refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from facesearch.cloudinary.delivery import (
    check_delivery_url,
    cloudinary_fetcher,
    delivery_host,
    delivery_url,
    fetch_policy,
)
from facesearch.config import Settings, load_settings
from facesearch.errors import ConfigError, ImageTooLarge, TransientError, UrlNotAllowed
from tests.support.cloudinary import CLOUD, DeliveryHost
from tests.support.cloudinary import delivery_host as serve

JPEG = b"\xff\xd8\xff\xe0" + b"j" * 4000


def settings(**changes: object) -> Settings:
    return load_settings(cloudinary_cloud_name=CLOUD, **changes)


def test_urls_are_built_by_the_sdk_bounded_and_https() -> None:
    url = delivery_url(settings(), "a/b c", 17, fmt="png")
    assert (
        url
        == f"https://res.cloudinary.com/{CLOUD}/image/upload/c_limit,h_2048,w_2048/v17/a/b%20c.png"
    )
    assert delivery_url(settings(cloudinary_max_side_px=512), "x", 1, fmt="psd").endswith(
        "/c_limit,h_512,w_512/v1/x.jpg"  # formats we cannot decode are asked for as JPEG
    )
    cname = settings(cloudinary_secure_distribution="images.example.com")
    assert delivery_url(cname, "x", 1, fmt="jpg") == (
        "https://images.example.com/image/upload/c_limit,h_2048,w_2048/v1/x.jpg"
    )
    assert delivery_host(cname) == "images.example.com"
    with pytest.raises(ValueError, match="private"):
        delivery_url(settings(), "x", 1, delivery_type="private")
    with pytest.raises(ConfigError):
        delivery_url(settings(), "x", 1, delivery_type="authenticated")
    with pytest.raises(ConfigError, match="CLOUD_NAME"):
        delivery_url(load_settings(), "x", 1)


def test_production_policy_allows_only_the_delivery_host_over_https() -> None:
    policy = fetch_policy(settings(max_image_bytes=1234))
    assert policy.allowed_hosts == ("res.cloudinary.com",) and policy.max_bytes == 1234
    assert not policy.allow_http and policy.allow_networks == () and policy.allowed_ports == (443,)


@pytest.mark.parametrize(
    "url",
    [
        f"http://res.cloudinary.com/{CLOUD}/image/upload/v1/x.jpg",  # not https
        "https://res.cloudinary.com/another-cloud/image/upload/v1/x.jpg",  # other cloud
        f"https://res.cloudinary.com/{CLOUD}/video/upload/v1/x.mp4",  # not an image
        f"https://res.cloudinary.com/{CLOUD}/image/upload/v1/../../../other/image/x.jpg",
        f"https://res.cloudinary.com/{CLOUD}/image/upload/v1/%2e%2e/%2e%2e/x.jpg",
        f"https://{CLOUD}.evil.test/{CLOUD}/image/upload/v1/x.jpg",  # other host
        f"https://res.cloudinary.com.evil.test/{CLOUD}/image/upload/v1/x.jpg",
        f"https://169.254.169.254/{CLOUD}/image/upload/v1/x.jpg",
        "https://127.0.0.1/computeMetadata/v1/",
        "file:///etc/passwd",
    ],
)
def test_urls_outside_our_cloud_are_refused_before_any_connection(url: str) -> None:
    fetch = cloudinary_fetcher(settings())
    with pytest.raises(UrlNotAllowed):
        check_delivery_url(url, settings())
    with pytest.raises(UrlNotAllowed):
        fetch(url)


@pytest.fixture
def cdn(tmp_path: Path) -> Iterator[DeliveryHost]:
    with serve(tmp_path) as host:
        yield host


def _cname(cdn: DeliveryHost, **changes: object) -> Settings:
    return settings(cloudinary_secure_distribution=f"{cdn.host}:{cdn.port}", **changes)


def test_fetches_the_bounded_derivative_from_the_delivery_host(cdn: DeliveryHost) -> None:
    config = _cname(cdn)
    url = delivery_url(config, "team/photo", 5, fmt="jpg")
    cdn.files["/image/upload/c_limit,h_2048,w_2048/v5/team/photo.jpg"] = JPEG
    assert cloudinary_fetcher(config, policy=cdn.policy())(url) == JPEG
    assert cdn.requests == ["/image/upload/c_limit,h_2048,w_2048/v5/team/photo.jpg"]


@pytest.mark.parametrize(
    "target",
    [
        "https://169.254.169.254/computeMetadata/v1/",  # metadata server
        "https://127.0.0.1:{port}/image/upload/v1/x.jpg",  # loopback by IP literal
        "https://evil.test:{port}/image/upload/v1/x.jpg",  # another host
        "http://{host}:{port}/image/upload/v1/x.jpg",  # downgrade to http
    ],
)
def test_redirects_off_the_delivery_host_are_refused(cdn: DeliveryHost, target: str) -> None:
    config = _cname(cdn)
    fetch = cloudinary_fetcher(config, policy=cdn.policy())
    location = target.format(host=cdn.host, port=cdn.port)
    with pytest.raises(UrlNotAllowed):
        fetch(f"https://{cdn.host}:{cdn.port}/image/redirect?to={location}")
    assert len(cdn.requests) == 1  # the redirect itself; its target was never requested


def test_a_host_resolving_to_the_metadata_server_is_refused(cdn: DeliveryHost) -> None:
    policy = replace(cdn.policy(), resolver=lambda host, port: ["169.254.169.254"])
    fetch = cloudinary_fetcher(_cname(cdn), policy=policy)
    with pytest.raises(UrlNotAllowed, match="non-public"):
        fetch(f"https://{cdn.host}:{cdn.port}/image/upload/v1/x.jpg")
    assert cdn.requests == []


def test_oversized_images_are_cut_off(cdn: DeliveryHost) -> None:
    cdn.files["/image/upload/v1/big.jpg"] = JPEG * 10
    fetch = cloudinary_fetcher(_cname(cdn), policy=cdn.policy(max_bytes=len(JPEG)))
    with pytest.raises(ImageTooLarge):
        fetch(f"https://{cdn.host}:{cdn.port}/image/upload/v1/big.jpg")


def test_upstream_failures_are_retryable(cdn: DeliveryHost) -> None:
    fetch = cloudinary_fetcher(_cname(cdn), policy=cdn.policy())
    with pytest.raises(TransientError, match="HTTP 503"):
        fetch(f"https://{cdn.host}:{cdn.port}/image/status/503")
    with pytest.raises(TransientError):
        fetch(f"https://{cdn.host}:{cdn.port}/image/upload/v1/missing.jpg")


def test_the_certificate_must_match_the_delivery_host(cdn: DeliveryHost) -> None:
    """TLS is verified against the host name: a server without our CA's cert is refused."""
    policy = replace(cdn.policy(), ssl_context=None)  # system CAs do not trust the test CA
    fetch = cloudinary_fetcher(_cname(cdn), policy=policy)
    with pytest.raises(TransientError, match="TLS"):
        fetch(f"https://{cdn.host}:{cdn.port}/image/upload/v1/x.jpg")


def test_videos_are_fetched_from_the_video_path_only(cdn: DeliveryHost) -> None:
    config = _cname(cdn)
    url = delivery_url(config, "team/clip", 7, fmt="mov", resource_type="video")
    assert url == f"https://{cdn.host}:{cdn.port}/video/upload/v7/team/clip.mov"  # as uploaded
    assert delivery_url(config, "team/clip", 7, fmt="wmv", resource_type="video").endswith(
        "/v7/team/clip.mp4"
    )
    cdn.files["/video/upload/v7/team/clip.mov"] = b"\x00\x00\x00\x18ftypqt  " + bytes(64)
    fetch_video = cloudinary_fetcher(config, policy=cdn.policy(), resource_type="video")
    assert fetch_video(url).startswith(b"\x00\x00\x00\x18ftyp")
    with pytest.raises(UrlNotAllowed):  # the video fetcher does not fetch images, and back
        fetch_video(f"https://{cdn.host}:{cdn.port}/image/upload/v1/x.jpg")
    with pytest.raises(UrlNotAllowed):
        cloudinary_fetcher(config, policy=cdn.policy())(url)
    with pytest.raises(ValueError):
        delivery_url(config, "x", 1, resource_type="raw")


def test_the_video_fetch_policy_has_its_own_cap_and_deadline() -> None:
    from facesearch.cloudinary.delivery import fetch_policy

    config = settings(video_fetch_max_bytes=1234, video_fetch_timeout_s=77.0)
    image, video = fetch_policy(config), fetch_policy(config, "video")
    assert (video.max_bytes, video.timeout_s) == (1234, 77.0)
    assert image.max_bytes == config.vision.max_image_bytes
    assert video.allowed_hosts == image.allowed_hosts == ("res.cloudinary.com",)
