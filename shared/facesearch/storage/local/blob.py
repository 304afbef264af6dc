"""Local-directory blob store with the same compare-and-swap guarantee as GCS.

Layout: object ``a/b`` is the plain file ``<root>/a/b`` (so ``cat manifest.json``
works); bookkeeping lives in ``<root>/.blobstore/`` (lock, counter, temp files).

How the guarantee is kept across *processes*, not just threads:

* Every write goes to a temp file first (fsynced), then, holding an exclusive
  ``fcntl.flock`` on ``.blobstore/lock``, the precondition is checked and the
  temp file is renamed over the target. ``rename`` is atomic, so readers see the
  old or the new object, never a torn one, and a writer killed at any point
  leaves at worst a stray temp file.
* The generation is stamped into the file's mtime (nanoseconds) *before* the
  rename, so data and generation change in one atomic step; a reader gets both
  from one ``fstat`` on the descriptor it reads from. Generations come from a
  counter under the same lock: ``max(now_ns, last + 1)``, hence unique,
  increasing and close to wall time (GC uses them as creation times, like GCS).
* The filesystem must keep nanosecond mtimes (ext4, xfs, btrfs, tmpfs, overlayfs
  do); that is probed once at start and refused loudly otherwise.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from facesearch.errors import ConfigError, NotFound, PreconditionFailed
from facesearch.storage.blob import BlobInfo, check_name

_META_DIR = ".blobstore"
#: Temp files older than this were left by a killed writer and are swept at start.
STALE_TEMP_AGE_S = 3600.0


class LocalBlobStore:
    """A directory acting as a bucket. Safe for concurrent processes on one host."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().resolve()
        # Crops are faces and the index holds embeddings: readable by this user only.
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._meta = self.root / _META_DIR
        self._tmp = self._meta / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_path = self._meta / "lock"
        self._counter_path = self._meta / "generation"
        self._lock_path.touch(exist_ok=True)
        self._probe_mtime_precision()
        self._sweep_stale_temp()

    @property
    def url(self) -> str:
        return self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalBlobStore({self.url})"

    # --- reads -----------------------------------------------------------------

    def read(self, name: str) -> tuple[bytes, int]:
        try:
            with self._path(name).open("rb") as handle:
                generation = os.fstat(handle.fileno()).st_mtime_ns
                return handle.read(), generation
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"{self.url}/{name} does not exist") from exc

    def download_to_file(self, name: str, dest: Path) -> int:
        try:
            with self._path(name).open("rb") as src, Path(dest).open("wb") as out:
                generation = os.fstat(src.fileno()).st_mtime_ns
                shutil.copyfileobj(src, out, length=8 * 1024 * 1024)
                return generation
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            if not self._path(name).is_file():
                raise NotFound(f"{self.url}/{name} does not exist") from exc
            raise

    def open_read(self, name: str, *, generation: int | None = None) -> BinaryIO:
        """The file itself (a directory keeps no history: an older generation is gone)."""
        try:
            handle = self._path(name).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"{self.url}/{name} does not exist") from exc
        if generation is not None and os.fstat(handle.fileno()).st_mtime_ns != generation:
            handle.close()
            raise NotFound(f"{self.url}/{name} generation {generation} is gone")
        return handle

    def stat(self, name: str) -> int | None:
        try:
            return self._path(name).stat().st_mtime_ns
        except (FileNotFoundError, NotADirectoryError):
            return None

    def list(self, prefix: str = "") -> list[BlobInfo]:
        out: list[BlobInfo] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for filename in filenames:
                if filename.startswith("."):
                    continue
                name = filename if rel_dir == "." else f"{rel_dir}/{filename}"
                if not name.startswith(prefix):
                    continue
                try:
                    st = (Path(dirpath) / filename).stat()
                except FileNotFoundError:  # deleted while we walked
                    continue
                out.append(BlobInfo(name, st.st_mtime_ns, st.st_size, st.st_mtime_ns / 1e9))
        out.sort(key=lambda info: info.name)
        return out

    def list_versions(self, prefix: str = "") -> builtins.list[BlobInfo]:
        """A directory keeps no history: the current objects are all there is."""
        return self.list(prefix)

    # --- writes ----------------------------------------------------------------

    def write(self, name: str, data: bytes, *, if_generation_match: int | None = None) -> int:
        tmp = self._new_temp()
        try:
            with tmp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            return self._commit(tmp, name, if_generation_match)
        finally:
            tmp.unlink(missing_ok=True)

    def write_file(self, name: str, src: Path, *, if_generation_match: int | None = None) -> int:
        tmp = self._new_temp()
        try:
            shutil.copyfile(src, tmp)
            with tmp.open("rb+") as handle:
                os.fsync(handle.fileno())
            return self._commit(tmp, name, if_generation_match)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, name: str) -> None:
        path = self._path(name)
        with self._locked():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            # Under the lock: a concurrent commit creates parent dirs under it too.
            self._prune_empty_dirs(path.parent)

    def delete_version(self, name: str, generation: int) -> None:
        """Delete ``name`` if ``generation`` is still its current one."""
        path = self._path(name)
        with self._locked():
            if self.stat(name) == generation:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                self._prune_empty_dirs(path.parent)

    # --- internals -------------------------------------------------------------

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def _new_temp(self) -> Path:
        path = self._tmp / f"{os.getpid()}-{uuid.uuid4().hex}"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return path

    def _commit(self, tmp: Path, name: str, if_generation_match: int | None) -> int:
        """Check the precondition and rename, all under the cross-process lock."""
        target = self._path(name)
        with self._locked():
            current = self.stat(name)
            if if_generation_match is not None:
                if if_generation_match == 0 and current is not None:
                    raise PreconditionFailed(f"{self.url}/{name} already exists")
                if if_generation_match not in (0, current):
                    raise PreconditionFailed(
                        f"{self.url}/{name}: generation is {current}, "
                        f"expected {if_generation_match}"
                    )
            generation = max(time.time_ns(), self._read_counter() + 1, (current or 0) + 1)
            self._write_counter(generation)
            os.utime(tmp, ns=(generation, generation))
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp.replace(target)
            self._fsync_dir(target.parent)
            return generation

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A fresh descriptor per call: flock excludes other descriptors, so this
        # serialises threads of this process as well as other processes.
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _read_counter(self) -> int:
        try:
            return int(self._counter_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _write_counter(self, value: int) -> None:
        tmp = self._counter_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(str(value))
        tmp.replace(self._counter_path)

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError as exc:  # some filesystems refuse fsync on directories
            if exc.errno not in (errno.EINVAL, errno.EBADF):
                raise
        finally:
            os.close(fd)

    def _prune_empty_dirs(self, directory: Path) -> None:
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _probe_mtime_precision(self) -> None:
        probe = self._tmp / f"probe-{os.getpid()}-{uuid.uuid4().hex}"
        stamp = 1_700_000_000_123_456_789
        try:
            probe.touch()
            os.utime(probe, ns=(stamp, stamp))
            kept = probe.stat().st_mtime_ns
        finally:
            probe.unlink(missing_ok=True)
        if kept != stamp:
            raise ConfigError(
                f"{self.root}: filesystem does not keep nanosecond mtimes "
                f"(wrote {stamp}, read {kept}); the local blob store needs them for "
                "generations. Use ext4/xfs/btrfs/tmpfs."
            )

    def _sweep_stale_temp(self) -> None:
        cutoff = time.time() - STALE_TEMP_AGE_S
        for entry in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
