"""Face quality: cheap, explainable measurements and a configurable accept policy.

Why: blurry, dark, tiny or strongly turned faces embed poorly and cause false
matches. Each metric is a plain image statistic or landmark geometry, so a
rejection can be explained to a user ("too blurry: sharpness 12 < 30").
Measured on the aligned face crop, so values are comparable across photo sizes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from facesearch.vision.settings import QualityPolicy
from facesearch.vision.types import Detection, FloatArray, ImageArray, Quality

# Where the nose tip sits between the eye line and the mouth line on a frontal
# face: (71.74 - 51.60) / (92.28 - 51.60) on the ArcFace 5-point template.
_FRONTAL_NOSE_RATIO = 0.495


def estimate_pose(landmarks: FloatArray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from 5 landmarks — a geometric estimate, not a 3D fit.

    Roll is the eye-line angle. After undoing roll, yaw follows from where the nose
    sits between the eyes (a nose tip about half an eye-distance deep moves by
    sin(yaw) while the eyes shrink by cos(yaw), hence atan), and pitch from where
    it sits between the eye and mouth lines relative to a frontal face. Good to a
    few degrees near frontal, coarse beyond ±45°: enough to reject profiles.
    """
    points = np.asarray(landmarks, dtype=np.float64)
    left_eye, right_eye = points[0], points[1]
    eye_vec = right_eye - left_eye
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    angle = -math.radians(roll)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    eye_mid = (left_eye + right_eye) / 2.0
    local = (points - eye_mid) @ rotation.T
    left_x, right_x = local[0, 0], local[1, 0]
    nose_local = local[2]
    mouth_local = (local[3] + local[4]) / 2.0
    eye_span = right_x - left_x
    if eye_span <= 1e-6:
        return 90.0, 0.0, roll
    horizontal = (nose_local[0] - (left_x + right_x) / 2.0) / (eye_span / 2.0)
    yaw = math.degrees(math.atan(horizontal))
    mouth_depth = mouth_local[1]
    pitch = 0.0
    if mouth_depth > 1e-6:
        ratio = nose_local[1] / mouth_depth
        pitch = math.degrees(math.atan((ratio - _FRONTAL_NOSE_RATIO) * 2.0))
    return yaw, pitch, roll


def _soft(value: float, low: float, high: float) -> float:
    """0 at/below ``low``, 1 at/above ``high``, linear between."""
    if high <= low:
        return 1.0 if value >= high else 0.0
    return float(min(1.0, max(0.0, (value - low) / (high - low))))


def assess(detection: Detection, aligned: ImageArray, policy: QualityPolicy) -> Quality:
    """Measure one face and apply the policy; ``aligned`` is the RGB embedder crop."""
    grey = cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    # Centre region: the warp pads borders with replicated pixels, which would
    # understate sharpness and skew brightness for faces near the image edge.
    inner = grey[height // 8 : height - height // 8, width // 8 : width - width // 8]
    sharpness = float(cv2.Laplacian(inner, cv2.CV_64F).var())
    brightness = float(inner.mean())
    contrast = float(inner.std())
    face_px = float(min(detection.width, detection.height))
    yaw, pitch, roll = estimate_pose(detection.landmarks)

    reasons: list[str] = []
    if face_px < policy.min_face_px:
        reasons.append(f"face too small: {face_px:.0f} px < {policy.min_face_px:.0f} px")
    if sharpness < policy.min_sharpness:
        reasons.append(f"too blurry: sharpness {sharpness:.1f} < {policy.min_sharpness:.1f}")
    if brightness < policy.min_brightness:
        reasons.append(f"too dark: brightness {brightness:.0f} < {policy.min_brightness:.0f}")
    if brightness > policy.max_brightness:
        reasons.append(f"overexposed: brightness {brightness:.0f} > {policy.max_brightness:.0f}")
    if contrast < policy.min_contrast:
        reasons.append(f"low contrast: {contrast:.1f} < {policy.min_contrast:.1f}")
    if abs(yaw) > policy.max_yaw_deg:
        reasons.append(f"head turned: yaw {yaw:.0f}° beyond ±{policy.max_yaw_deg:.0f}°")
    if abs(pitch) > policy.max_pitch_deg:
        reasons.append(f"head tilted: pitch {pitch:.0f}° beyond ±{policy.max_pitch_deg:.0f}°")
    if abs(roll) > policy.max_roll_deg:
        reasons.append(f"head rolled: roll {roll:.0f}° beyond ±{policy.max_roll_deg:.0f}°")

    score = (
        _soft(face_px, policy.min_face_px * 0.5, policy.min_face_px * 2.0)
        * _soft(sharpness, policy.min_sharpness * 0.5, policy.min_sharpness * 4.0)
        * _soft(contrast, policy.min_contrast * 0.5, policy.min_contrast * 2.5)
        * (1.0 - _soft(abs(brightness - 128.0), 60.0, 128.0))
        * (1.0 - _soft(abs(yaw), policy.max_yaw_deg * 0.5, policy.max_yaw_deg * 1.5))
        * (1.0 - _soft(abs(pitch), policy.max_pitch_deg * 0.5, policy.max_pitch_deg * 1.5))
    )
    return Quality(
        sharpness=sharpness,
        brightness=brightness,
        contrast=contrast,
        face_px=face_px,
        yaw_deg=yaw,
        pitch_deg=pitch,
        roll_deg=roll,
        score=round(float(score), 4),
        reasons=tuple(reasons),
    )
