"""The in-process bus keeps Pub/Sub's promises; the topic wire formats round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facesearch.errors import BadMessage
from facesearch.storage.bus import Bus, Message
from facesearch.storage.local.bus import InProcessBus
from facesearch.storage.messages import DeletionsMessage, EmbeddingsMessage, FaceEvent


def test_in_process_bus_is_a_bus() -> None:
    assert isinstance(InProcessBus(), Bus)


def test_drain_delivers_in_batches_and_acks() -> None:
    bus = InProcessBus(batch_size=3)
    seen: list[list[str]] = []
    bus.subscribe("t", lambda batch: seen.append([m.data.decode() for m in batch]))
    ids = bus.publish("t", [Message(str(i).encode()) for i in range(7)])
    assert len(set(ids)) == 7
    assert bus.drain() == 7
    assert seen == [["0", "1", "2"], ["3", "4", "5"], ["6"]]
    assert bus.pending() == 0


def test_failing_handler_gets_redelivery_then_dead_letter() -> None:
    bus = InProcessBus(max_attempts=3)
    poison_attempts: list[int] = []
    acked: list[bytes] = []

    def handler(batch: list[Message]) -> None:
        if any(m.data == b"poison" for m in batch):
            poison_attempts.extend(m.delivery_attempt for m in batch if m.data == b"poison")
            raise RuntimeError("boom")
        acked.extend(m.data for m in batch)

    bus.subscribe("t", handler)
    bus.publish("t", [Message(b"poison"), Message(b"fine")])
    assert bus.drain() == 1
    assert acked == [b"fine"]  # its batch-mate's failure did not hold it back
    assert max(poison_attempts) == 3
    assert [(t, m.data) for t, m, _ in bus.dead_letters] == [("t", b"poison")]


def test_unsubscribed_topic_keeps_its_messages() -> None:
    bus = InProcessBus()
    bus.publish("nobody", [Message(b"x")])
    assert bus.drain() == 0
    assert bus.pending("nobody") == 1


def test_embeddings_message_round_trip() -> None:
    vectors = np.random.default_rng(1).normal(size=(3, 128)).astype(np.float32)
    msg = EmbeddingsMessage(
        "img", "dlib-resnet-v1@2", ["img-0", "img-1", "img-2"], vectors, 12.5, "wedding"
    )
    wire = msg.encode()
    assert wire.attributes == {
        "kind": "embeddings",
        "image_id": "img",
        "model": "dlib-resnet-v1@2",
        "collection": "wedding",
    }
    back = EmbeddingsMessage.decode(wire)
    assert back.face_ids == msg.face_ids and back.model == msg.model and back.source_time == 12.5
    assert back.collection_id == "wedding"
    assert np.array_equal(back.vectors, vectors)


def test_messages_from_before_collections_belong_to_the_default_collection() -> None:
    """A message published by an older ingest (no collection field) is still applied."""
    vectors = np.zeros((1, 4), dtype=np.float32)
    wire = EmbeddingsMessage("img", "m@1", ["img-0"], vectors, 1.0).encode()
    body = json.loads(wire.data)
    body.pop("collection")
    old = Message(json.dumps(body).encode(), {"kind": "embeddings"})
    assert EmbeddingsMessage.decode(old).collection_id == "default"


@pytest.mark.parametrize(
    "data",
    [b"not json", b"[]", b'{"v": 99}', b'{"v": 1, "faces": [{"face_id": "a"}], "dims": 2}'],
)
def test_malformed_embeddings_are_poison(data: bytes) -> None:
    with pytest.raises(BadMessage):
        EmbeddingsMessage.decode(Message(data))


def test_deletions_and_events_round_trip() -> None:
    assert DeletionsMessage.decode(DeletionsMessage(["a", "b"], "image deleted").encode()) == (
        DeletionsMessage(["a", "b"], "image deleted")
    )
    with pytest.raises(BadMessage):
        DeletionsMessage.decode(Message(b'{"v": 1, "face_ids": [1]}'))
    event = FaceEvent("face_added", ["a"], "m@1", 4)
    assert FaceEvent.decode(event.encode()) == event
