"""``facesearch dlq`` against the Pub/Sub emulator: list leaves messages queued, show finds
one, replay republishes to the source topic and acknowledges the dead letter."""

from __future__ import annotations

import pytest

from facesearch.errors import NotFound
from facesearch.storage.gcp.bus import PubSubBus
from facesearch.storage.gcp.dlq import PubSubDeadLetters
from tests.integration.pipeline_harness import create_topics, pull_all
from tests.support import emulators


@pytest.mark.integration
def test_list_show_replay(pubsub_emulator: emulators.Emulator, gcp_project: str) -> None:
    from google.cloud import pubsub_v1

    create_topics(gcp_project, "face-embeddings", "face-embeddings-dlq")
    subscriber = pubsub_v1.SubscriberClient()
    for sub, topic in (
        ("face-embeddings-dlq-pull", "face-embeddings-dlq"),
        ("src", "face-embeddings"),
    ):
        subscriber.create_subscription(
            name=f"projects/{gcp_project}/subscriptions/{sub}",
            topic=f"projects/{gcp_project}/topics/{topic}",
        )
    publisher = pubsub_v1.PublisherClient()
    dlq_topic = f"projects/{gcp_project}/topics/face-embeddings-dlq"
    for n in range(2):  # as Pub/Sub dead-letters them: body, attributes, delivery count
        publisher.publish(
            dlq_topic, f"body-{n}".encode(), kind="embeddings",
            CloudPubSubDeadLetterSourceDeliveryCount="10",
        ).result()  # fmt: skip

    queues = PubSubDeadLetters(gcp_project, ["face-embeddings"], PubSubBus(gcp_project))
    letters = queues.letters()
    assert sorted(d.data for d in letters) == [b"body-0", b"body-1"]
    assert {d.topic for d in letters} == {"face-embeddings"}
    assert len(queues.letters()) == 2  # listing consumed nothing
    first = letters[0]
    assert queues.show(first.message_id).data == first.data
    with pytest.raises(NotFound):
        queues.show("no-such-id")

    assert queues.replay([first.message_id]) == [first.message_id]
    replayed = pull_all(gcp_project, "src", max_wait_s=2.0)
    assert [m.data for m in replayed] == [first.data]
    (message,) = replayed
    assert message.attributes["replayed_from"] == first.message_id
    assert "CloudPubSubDeadLetterSourceDeliveryCount" not in message.attributes
    assert [d.data for d in queues.letters()] == [d.data for d in letters[1:]]
    assert len(queues.replay()) == 1  # --all
    assert queues.letters() == [] and queues.replay() == []  # idempotent
