"""Optional face attributes: gender from faceres-deep, checked against labels we have."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facesearch.config import DEFAULT_MODELS_DIR, load_settings
from facesearch.errors import ModelError
from facesearch.vision.attributes import AttributeModel
from facesearch.vision.inference import TensorSpec
from facesearch.vision.liveness import LivenessCrop
from facesearch.vision.pipeline import FacePipeline
from facesearch.vision.types import Detection
from tests.bench.common import dev_set, list_images
from tests.bench.human_models import GENDER

MODEL = "faceres-deep-v1"


@dataclass
class _Node:
    name: str
    shape: list[Any]


class FakeSession:
    """P(male) = mean red level of the crop / 255; records what it is fed."""

    def __init__(self) -> None:
        self.calls: list[np.ndarray] = []

    def get_inputs(self) -> list[Any]:
        return [_Node("x", ["batch", 8, 8, 3])]

    def get_outputs(self) -> list[Any]:
        return [_Node("male", ["batch", 1]), _Node("other", ["batch", 4])]

    def run(self, names: list[str] | None, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feed["x"]
        self.calls.append(x)
        return [x[..., 0].reshape(len(x), -1).mean(axis=1, keepdims=True) / 255.0]


def _det(x1: float, y1: float, x2: float, y2: float) -> Detection:
    box = np.array([x1, y1, x2, y2], np.float32)
    return Detection(box=box, score=0.99, landmarks=np.zeros((5, 2), np.float32))


def test_one_call_per_image_and_the_threshold() -> None:
    session = FakeSession()
    model = AttributeModel(
        session,
        model_id="fake@1",
        input_spec=TensorSpec(mean=(0, 0, 0), std=(1, 1, 1)),
        size=(8, 8),
        crop=LivenessCrop(square=True, scale=1.0, center_shift=(0.0, 0.0)),
        gender_output="male",
    )
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, :40, 0] = 230
    found = model.predict(image, [_det(5, 5, 35, 35), _det(45, 5, 75, 35)])
    assert len(session.calls) == 1 and session.calls[0].shape == (2, 8, 8, 3)
    assert [a.gender for a in found] == ["male", "female"]
    assert found[0].gender_score == pytest.approx(230 / 255, abs=1e-3)
    assert model.predict(image, []) == [] and len(session.calls) == 1
    with pytest.raises(ModelError, match="no output"):
        AttributeModel(
            FakeSession(),
            model_id="x",
            input_spec=TensorSpec(),
            size=(8, 8),
            crop=LivenessCrop(),
            gender_output="age",
        )


@pytest.fixture(scope="module")
def model() -> AttributeModel:
    return AttributeModel.from_manifest(DEFAULT_MODELS_DIR, MODEL)


def test_gender_on_the_labelled_dev_set(model: AttributeModel) -> None:
    """Measured 70/70 (18 identities, 33 faces of women); held to >= 95 % here."""
    folder = dev_set()
    if folder is None:
        pytest.fail("faces-dev not found beside the checkout (set FACESEARCH_DEV_SET)")
    pipeline = FacePipeline(load_settings(onnx_providers="CPUExecutionProvider"))
    right = total = 0
    for identity in sorted(GENDER):
        for path in list_images(folder / identity):
            from facesearch.vision.decode import decode_image

            image = decode_image(path.read_bytes()).rgb
            faces = pipeline.detect(image)
            biggest = max(faces, key=lambda d: d.width * d.height)
            predicted = model.predict(image, [biggest])[0]
            right += predicted.gender == {"m": "male", "f": "female"}[GENDER[identity]]
            total += 1
    assert total >= 60
    assert right / total >= 0.95, (right, total)


def test_pipeline_adds_attributes_only_when_enabled(photos_dir: Path) -> None:
    data = (photos_dir / "labelled/obama/obama_1.jpg").read_bytes()
    plain = FacePipeline(load_settings(onnx_providers="CPUExecutionProvider")).process(data)
    assert plain.faces[0].attributes is None
    enabled = FacePipeline(
        load_settings(onnx_providers="CPUExecutionProvider", face_attributes=True)
    ).process(data)
    attributes = enabled.faces[0].attributes
    assert attributes is not None and attributes.gender == "male"
    assert attributes.model == f"{MODEL}@1"
    assert "attributes" in enabled.timings_ms
