"""Draw detections on a copy of an image, for humans checking what the detector saw."""

from __future__ import annotations

from pathlib import Path

import cv2

from facesearch.vision.types import ImageArray, ImageResult

_GOOD = (40, 200, 40)
_WEAK = (0, 165, 255)  # BGR orange: detected but rejected by quality or liveness
_LANDMARK_COLOURS = ((255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255))


def annotate(image: ImageArray, result: ImageResult, out: Path) -> None:
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    scale = max(1.0, max(canvas.shape[:2]) / 800.0)
    thickness = max(1, round(2 * scale))
    for face in result.faces:
        acceptable = (face.quality is None or face.quality.acceptable) and face.live is not False
        colour = _GOOD if acceptable else _WEAK
        x1, y1, x2, y2 = (round(float(v)) for v in face.detection.box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thickness)
        for (x, y), landmark_colour in zip(
            face.detection.landmarks, _LANDMARK_COLOURS, strict=True
        ):
            cv2.circle(canvas, (int(x), int(y)), thickness + 1, landmark_colour, -1)
        label = f"#{face.index} det {face.detection.score:.2f}"
        if face.liveness is not None:
            label += f" live {face.liveness:.2f}"
        if face.quality is not None:
            label += f" q {face.quality.score:.2f}"
        cv2.putText(
            canvas,
            label,
            (x1, max(12, y1 - 6)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45 * scale,
            colour,
            thickness,
            cv2.LINE_AA,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), canvas):
        raise OSError(f"could not write {out} (unknown extension?)")
