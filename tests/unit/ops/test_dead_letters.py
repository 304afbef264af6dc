"""The embedded bus is durable and its dead letters can be listed and replayed."""

from __future__ import annotations

from pathlib import Path

import pytest

from facesearch.errors import NotFound
from facesearch.storage.bus import Message
from facesearch.storage.local.bus import InProcessBus, LocalDeadLetters


def test_messages_outlive_the_process_that_published_them(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    first = InProcessBus(path)
    first.subscribe("t", lambda batch: None)
    first.publish("t", [Message(b"a"), Message(b"b", {"k": "v"})])
    first.close()  # the process "dies" before delivering

    seen: list[tuple[bytes, dict[str, str]]] = []
    second = InProcessBus(path)
    second.subscribe("t", lambda batch: seen.extend((m.data, dict(m.attributes)) for m in batch))
    assert second.drain() == 2
    assert seen == [(b"a", {}), (b"b", {"k": "v"})]
    assert second.pending("t") == 0


def test_a_lease_of_a_dead_process_is_void(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite3"
    bus = InProcessBus(path)
    bus.subscribe("t", lambda batch: None)
    bus.publish("t", [Message(b"x")])
    # a batch leased by a process that no longer exists (pid far beyond pid_max)
    bus._conn.execute("UPDATE bus_messages SET lease_owner = 99999999, lease_until = 9e12")
    assert bus.drain() == 1


def test_dead_letters_are_listed_and_replayed_once(tmp_path: Path) -> None:
    bus = InProcessBus(tmp_path / "bus.sqlite3", max_attempts=2)
    broken = {"on": True}
    delivered: list[bytes] = []

    def handler(batch: list[Message]) -> None:
        if broken["on"]:
            raise RuntimeError("index bucket down")
        delivered.extend(m.data for m in batch)

    bus.subscribe("t", handler)
    bus.publish("t", [Message(b"one")])
    assert bus.drain() == 0
    queues = LocalDeadLetters(bus)
    (letter,) = queues.letters()
    assert letter.topic == "t" and "index bucket down" in letter.error
    assert queues.show(letter.message_id).data == b"one"
    with pytest.raises(NotFound):
        queues.show("12345")

    broken["on"] = False
    assert queues.replay([letter.message_id]) == [letter.message_id]
    assert queues.replay([letter.message_id]) == []  # idempotent: it is no longer dead
    assert bus.drain() == 1
    assert delivered == [b"one"]
    assert queues.letters() == []
