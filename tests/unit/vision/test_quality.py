"""Quality metrics respond to the things they claim to measure."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from facesearch.vision.align import ARCFACE_112_TEMPLATE, align_face, similarity_transform
from facesearch.vision.quality import QualityPolicy, assess, estimate_pose
from facesearch.vision.types import Detection
from tests.data.image_corpus import real_photo


def _detection(landmarks: np.ndarray, size: float = 120.0) -> Detection:
    centre = landmarks.mean(axis=0)
    box = np.array(
        [centre[0] - size / 2, centre[1] - size / 2, centre[0] + size / 2, centre[1] + size / 2]
    )
    return Detection(box=box.astype(np.float32), score=0.99, landmarks=landmarks.astype(np.float32))


def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = points.mean(axis=0)
    return (points - centre) @ rotation.T + centre


def test_frontal_template_is_frontal() -> None:
    yaw, pitch, roll = estimate_pose(ARCFACE_112_TEMPLATE)
    assert abs(yaw) < 3 and abs(pitch) < 3 and abs(roll) < 1


@pytest.mark.parametrize("degrees", [-30.0, 15.0, 60.0])
def test_roll_follows_in_plane_rotation(degrees: float) -> None:
    yaw, pitch, roll = estimate_pose(_rotate(ARCFACE_112_TEMPLATE, degrees))
    assert roll == pytest.approx(degrees, abs=0.5)
    assert abs(yaw) < 3 and abs(pitch) < 3  # rotation in plane is not a turn


def test_yaw_sign_and_magnitude() -> None:
    turned = ARCFACE_112_TEMPLATE.copy()
    turned[2, 0] += 15.0  # nose moves towards the right eye
    yaw, _, _ = estimate_pose(turned)
    assert 30 < yaw < 60
    turned[2, 0] -= 30.0
    assert estimate_pose(turned)[0] < -30


def test_pitch_when_nose_moves_down() -> None:
    down = ARCFACE_112_TEMPLATE.copy()
    down[2, 1] += 12.0
    assert estimate_pose(down)[1] > 20


def _aligned_real_face() -> tuple[np.ndarray, Detection]:
    # A fixed, plausible set of landmarks in template space, mapped into the photo.
    photo = np.asarray(real_photo())
    h, w = photo.shape[:2]
    scale = min(h, w) / 3 / 112
    landmarks = ARCFACE_112_TEMPLATE * scale * 2 + np.array([w / 3, h / 4], dtype=np.float32)
    crop = align_face(photo, landmarks, ARCFACE_112_TEMPLATE, (112, 112))
    return crop, _detection(landmarks, size=224 * scale)


def test_blur_lowers_sharpness_and_is_rejected() -> None:
    crop, detection = _aligned_real_face()
    policy = QualityPolicy()
    sharp = assess(detection, crop, policy)
    blurred = assess(detection, cv2.GaussianBlur(crop, (0, 0), 4.0), policy)
    assert blurred.sharpness < sharp.sharpness / 4
    assert any("blurry" in reason for reason in blurred.reasons)
    assert blurred.score < sharp.score


def test_dark_and_flat_images_are_rejected_with_reasons() -> None:
    crop, detection = _aligned_real_face()
    dark = assess(detection, (crop * 0.1).astype(np.uint8), QualityPolicy())
    assert any("too dark" in reason for reason in dark.reasons)
    flat = assess(detection, np.full_like(crop, 128), QualityPolicy())
    assert any("low contrast" in reason for reason in flat.reasons)
    assert flat.score == 0.0


def test_small_face_rejected() -> None:
    crop, _ = _aligned_real_face()
    small = _detection(ARCFACE_112_TEMPLATE * 0.2, size=20)
    report = assess(small, crop, QualityPolicy(min_face_px=40))
    assert any("too small" in reason for reason in report.reasons)
    assert not report.acceptable


def test_similarity_transform_recovers_known_transform() -> None:
    angle = np.radians(20)
    matrix = np.array(
        [
            [1.5 * np.cos(angle), -1.5 * np.sin(angle), 10],
            [1.5 * np.sin(angle), 1.5 * np.cos(angle), -4],
        ]
    )
    src = ARCFACE_112_TEMPLATE
    dst = src @ matrix[:, :2].T + matrix[:, 2]
    assert np.allclose(similarity_transform(src, dst), matrix, atol=1e-4)
