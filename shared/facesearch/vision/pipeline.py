"""Image bytes → faces: decode → detect → liveness → align → quality → embed.

One ``FacePipeline`` per process: model sessions load once (lazily, on first
use) and are reused across requests, which is what keeps warm Cloud Run
instances fast. ``process_batch`` embeds the faces of several images in one
batched model call, which is where a GPU (or ORT's CPU kernels) pays off.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from facesearch.config import Settings, get_settings
from facesearch.errors import FaceSearchError
from facesearch.telemetry import span
from facesearch.vision.attributes import AttributeModel
from facesearch.vision.decode import DecodedImage, decode_image
from facesearch.vision.detect import MtcnnDetector
from facesearch.vision.embed import FaceEmbedder
from facesearch.vision.liveness import LivenessModel
from facesearch.vision.memory import limit_heap_growth
from facesearch.vision.quality import assess
from facesearch.vision.settings import QualityPolicy
from facesearch.vision.types import Detection, Face, ImageArray, ImageResult

STAGES = ("decode", "detect", "liveness", "attributes", "align", "quality", "embed")


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Time a stage into ``timings`` and trace it as a ``vision.<stage>`` span."""
    start = time.perf_counter()
    try:
        with span(f"vision.{stage}"):
            yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + (time.perf_counter() - start) * 1000.0


@dataclass
class _Pending:
    """An image that has been detected/aligned and waits for the batched embed call."""

    width: int
    height: int
    source_format: str  # the decoded pixels are not kept: a batch holds only crops
    faces: list[Face]
    crops: list[ImageArray]
    timings: dict[str, float]


class FacePipeline:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        detector: MtcnnDetector | None = None,
        liveness: LivenessModel | None = None,
        embedder: FaceEmbedder | None = None,
        attributes: AttributeModel | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        limit_heap_growth()  # see facesearch.vision.memory: peak RSS -40 % on big photos
        self._detector = detector
        self._liveness = liveness
        self._embedder = embedder
        self._attributes = attributes
        self.policy = self.settings.quality

    # Models load on first use so that importing the module (cold start) stays cheap.
    @property
    def detector(self) -> MtcnnDetector:
        if self._detector is None:
            self._detector = MtcnnDetector.from_settings(self.settings.vision)
        return self._detector

    @property
    def liveness(self) -> LivenessModel:
        if self._liveness is None:
            self._liveness = LivenessModel.from_settings(self.settings.vision)
        return self._liveness

    @property
    def embedder(self) -> FaceEmbedder:
        if self._embedder is None:
            self._embedder = FaceEmbedder.from_settings(self.settings.vision)
        return self._embedder

    @property
    def attributes(self) -> AttributeModel | None:
        """The face-attribute model, or None when ``vision.face_attributes`` is off."""
        if self._attributes is None and self.settings.vision.face_attributes:
            self._attributes = AttributeModel.from_settings(self.settings.vision)
        return self._attributes

    def warm_up(self) -> None:
        """Load every model now (e.g. at instance start) instead of on the first request."""
        _ = self.detector, self.liveness, self.embedder, self.attributes

    def decode(self, data: bytes) -> DecodedImage:
        return decode_image(
            data,
            max_bytes=self.settings.vision.max_image_bytes,
            max_pixels=self.settings.vision.max_image_pixels,
            min_side_px=self.settings.vision.min_image_side_px,
        )

    def process(self, data: bytes, *, policy: QualityPolicy | None = None) -> ImageResult:
        """Run the whole pipeline on one image; raises a typed error for a bad image.

        ``policy`` judges quality with other limits than the settings' (a collection's own).
        """
        result = self.process_batch([data], policy=policy)[0]
        if isinstance(result, FaceSearchError):
            raise result
        return result

    def process_decoded(self, decoded: DecodedImage, *, decode_ms: float = 0.0) -> ImageResult:
        self.warm_up()
        timings: dict[str, float] = {"decode": decode_ms}
        pending = self._detect_and_align(decoded, timings)
        return self._embed_pending([pending])[0]

    def process_decoded_batch(
        self, images: Sequence[DecodedImage], *, policy: QualityPolicy | None = None
    ) -> list[ImageResult]:
        """Already-decoded images (e.g. video frames): detect each, embed all faces at once.

        The faces of several frames share one batched embedder call, as in
        ``process_batch``; there is no decode step to fail, so no error slots.
        """
        self.warm_up()
        pending = [self._detect_and_align(decoded, {"decode": 0.0}, policy) for decoded in images]
        return self._embed_pending(pending)

    def process_batch(
        self, images: Sequence[bytes], *, policy: QualityPolicy | None = None
    ) -> list[ImageResult | FaceSearchError]:
        """Process several images; faces of all images share batched embedder calls.

        A bad image yields its typed error in its slot and does not fail the others.
        """
        self.warm_up()  # model loading must not be billed to the first image's stages
        slots: list[ImageResult | FaceSearchError | None] = [None] * len(images)
        pending: list[tuple[int, _Pending]] = []
        for position, data in enumerate(images):
            timings: dict[str, float] = {}
            try:
                with _timed(timings, "decode"):
                    decoded = self.decode(data)
                pending.append((position, self._detect_and_align(decoded, timings, policy)))
            except FaceSearchError as error:
                slots[position] = error
        for (position, _), result in zip(
            pending, self._embed_pending([item for _, item in pending]), strict=True
        ):
            slots[position] = result
        return [slot for slot in slots if slot is not None]

    def detect(self, image: ImageArray) -> list[Detection]:
        """Detections at least ``min_face_px`` on their shorter side, best first.

        MTCNN's finest pyramid level still proposes boxes below the configured
        minimum (e.g. 14 px playing cards in a group photo); a face smaller than
        the minimum the operator asked for is not reported.
        """
        vision = self.settings.vision
        minimum = max(vision.min_face_px, vision.min_face_ratio * min(image.shape[:2]))
        detections = [d for d in self.detector.detect(image) if min(d.width, d.height) >= minimum]
        return detections[: self.settings.vision.max_faces_per_image]

    def _detect_and_align(
        self,
        decoded: DecodedImage,
        timings: dict[str, float],
        policy: QualityPolicy | None = None,
    ) -> _Pending:
        image = decoded.rgb
        with _timed(timings, "detect"):
            detections = self.detect(image)
        with _timed(timings, "liveness"):
            scores = (
                self.liveness.score(image, detections)
                if detections
                else np.zeros(0, dtype=np.float32)
            )
        with _timed(timings, "attributes"):
            model = self.attributes
            attributes = model.predict(image, detections) if model else [None] * len(detections)
        with _timed(timings, "align"):
            crops = self.embedder.crops(image, detections)
        faces: list[Face] = []
        for index, (detection, live, crop, attribute) in enumerate(
            zip(detections, scores, crops, attributes, strict=True)
        ):
            with _timed(timings, "quality"):
                quality = assess(detection, crop, policy or self.policy)
            faces.append(
                Face(
                    index=index,
                    detection=detection,
                    liveness=float(live),
                    live=bool(live >= self.settings.vision.liveness_threshold),
                    quality=quality,
                    attributes=attribute,
                )
            )
        return _Pending(
            width=decoded.width,
            height=decoded.height,
            source_format=decoded.format,
            faces=faces,
            crops=crops,
            timings=timings,
        )

    def _embed_pending(self, batch: list[_Pending]) -> list[ImageResult]:
        all_crops = [crop for item in batch for crop in item.crops]
        start = time.perf_counter()
        with span("vision.embed", {"facesearch.faces": len(all_crops)}):
            embeddings = (
                self.embedder.embed(all_crops) if all_crops else np.zeros((0, 1), dtype=np.float32)
            )
        embed_ms = (time.perf_counter() - start) * 1000.0
        results: list[ImageResult] = []
        offset = 0
        for item in batch:
            count = len(item.faces)
            for face, crop, vector in zip(
                item.faces, item.crops, embeddings[offset : offset + count], strict=True
            ):
                face.embedding = vector
                face.crop = crop
            # Share the batched call's time by face count so per-image timings add up.
            item.timings["embed"] = embed_ms * count / len(all_crops) if all_crops else 0.0
            offset += count
            results.append(
                ImageResult(
                    width=item.width,
                    height=item.height,
                    faces=item.faces,
                    model=self.embedder.model_id,
                    timings_ms={stage: round(item.timings.get(stage, 0.0), 3) for stage in STAGES},
                    source_format=item.source_format,
                )
            )
        return results
