"""Integration fixtures: real emulators, started by the tests themselves, once per session.

A missing or broken emulator is a test failure with a message saying what to
install, never a skip: a green run must mean the integration tests ran.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import emulators


@pytest.fixture(scope="session")
def emulator_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-logs")


@pytest.fixture(scope="session")
def gcs_emulator(
    emulator_log_dir: Path, pubsub_emulator: emulators.Emulator
) -> Iterator[emulators.Emulator]:
    """fake-gcs-server for the whole session; ``STORAGE_EMULATOR_HOST`` set while it runs.

    It publishes object-finalize notifications to the Pub/Sub emulator (topic
    ``gcs-events`` of project ``fs-gcs-events``), which the pipeline tests relay to
    the ingest function the way Eventarc does. One GCS emulator per session: the
    blob adapter's storage client is a process-wide singleton bound to one host.
    """
    from tests.integration.pipeline_harness import (
        GCS_EVENTS_PROJECT,
        GCS_EVENTS_TOPIC,
        create_topics,
    )

    create_topics(GCS_EVENTS_PROJECT, GCS_EVENTS_TOPIC)
    events = [
        "-event.pubsub-project-id",
        GCS_EVENTS_PROJECT,
        "-event.pubsub-topic",
        GCS_EVENTS_TOPIC,
    ]
    stack = contextlib.ExitStack()
    try:
        emulator = stack.enter_context(emulators.gcs_emulator(emulator_log_dir, extra_args=events))
    except (emulators.EmulatorMissing, emulators.EmulatorFailed) as exc:
        pytest.fail(f"GCS emulator unavailable: {exc}", pytrace=False)
    with stack, emulators.patched_env(emulator.env):
        yield emulator


@pytest.fixture
def gcs_bucket(gcs_emulator: emulators.Emulator) -> str:
    """A fresh bucket per test (the emulator has no reset); returns ``gs://bucket/prefix``."""
    from google.cloud import storage

    name = f"test-{uuid.uuid4().hex[:20]}"
    storage.Client(project="facesearch-test").create_bucket(name)
    return f"gs://{name}/index"


def _start(
    stack: contextlib.ExitStack, name: str, factory: object, log_dir: Path
) -> emulators.Emulator:
    try:
        return stack.enter_context(factory(log_dir))  # type: ignore[operator]
    except (emulators.EmulatorMissing, emulators.EmulatorFailed) as exc:
        pytest.fail(f"{name} emulator unavailable: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def pubsub_emulator(emulator_log_dir: Path) -> Iterator[emulators.Emulator]:
    """Google's Pub/Sub emulator for the session; ``PUBSUB_EMULATOR_HOST`` set while it runs."""
    stack = contextlib.ExitStack()
    emulator = _start(stack, "Pub/Sub", emulators.pubsub_emulator, emulator_log_dir)
    with stack, emulators.patched_env(emulator.env):
        yield emulator


@pytest.fixture(scope="session")
def firestore_emulator(emulator_log_dir: Path) -> Iterator[emulators.Emulator]:
    """Google's Firestore emulator for the session; ``FIRESTORE_EMULATOR_HOST`` set."""
    stack = contextlib.ExitStack()
    emulator = _start(stack, "Firestore", emulators.firestore_emulator, emulator_log_dir)
    with stack, emulators.patched_env(emulator.env):
        yield emulator


@pytest.fixture
def gcp_project() -> str:
    """A fresh project id per test: the Pub/Sub emulator has no reset, names stay apart."""
    return f"fs-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def emulated(
    gcs_emulator: emulators.Emulator,
    pubsub_emulator: emulators.Emulator,
    firestore_emulator: emulators.Emulator,
) -> None:
    """All three emulators up (GCS publishes its notifications to Pub/Sub)."""
