"""Cloudinary uploads routed to collections by folder, tag or context, and their deletes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facesearch.cloudinary.delivery import cloudinary_image_id, source_id
from facesearch.storage.catalog import CollectionRecord
from facesearch.storage.metadata import ImageRecord, ImageStatus
from tests.support.cloudinary import CLOUD, raw, sample
from tests.unit.cloudinary.test_webhook import PUBLIC_ID, VERSION, Harness


@pytest.mark.parametrize(
    ("rule", "changes", "expected"),
    [
        ("folder", {}, "team"),  # asset_folder "team/offsite 2026"
        ("folder", {"asset_folder": "", "public_id": "wedding/a/b"}, "wedding"),
        ("folder", {"asset_folder": "Team Photos"}, "default"),  # not an id: default
        ("tag", {"tags": ["x", "collection:gala-2026"]}, "gala-2026"),
        ("tag", {"tags": ["gala-2026"]}, "default"),
        ("context", {"context": {"custom": {"collection": "kiosk-1"}}}, "kiosk-1"),
        ("none", {"tags": ["collection:gala-2026"]}, "default"),
    ],
)
def test_uploads_go_to_the_collection_the_rule_names(
    tmp_path: Path, rule: str, changes: dict[str, object], expected: str
) -> None:
    hook = Harness(tmp_path, cloudinary_collection_from=rule)
    body = sample("upload", **changes)
    response = hook.post(raw(body))
    assert response.status_code == 200, response.get_data()
    (message,) = hook.queued
    assert message.attributes["collection"] == expected
    assert json.loads(message.data)["collection"] == expected
    public_id = str(body["public_id"])
    assert message.attributes["image_id"] == cloudinary_image_id(
        CLOUD, public_id, VERSION, expected
    )


def test_a_delete_forgets_the_image_in_the_collection_its_upload_went_to(
    tmp_path: Path,
) -> None:
    """Delete notifications carry no tags: the ledger remembers the upload's collection."""
    hook = Harness(tmp_path, cloudinary_collection_from="tag")
    hook.backend.catalog().create_collection(CollectionRecord("gala"))
    hook.post(raw(sample("upload", tags=["collection:gala"])))
    image_id = cloudinary_image_id(CLOUD, PUBLIC_ID, VERSION, "gala")
    hook.backend.metadata("gala").put_image(
        ImageRecord(
            image_id, source_id(CLOUD, PUBLIC_ID, VERSION), status=ImageStatus.DONE, face_count=3
        )
    )
    response = hook.post(raw(sample("delete")))
    assert response.status_code == 200, response.get_data()
    assert json.loads(response.get_data())["image_ids"] == [image_id]
    assert hook.forgotten == [image_id] and hook.forgotten_in == ["gala"]
    # the tombstone and the asset record stay until an erase
    assert hook.ledger.count_collection("gala") == 2
    assert hook.ledger.purge_collection("gala", limit=10) == 2
    assert hook.ledger.count_collection("gala") == 0
