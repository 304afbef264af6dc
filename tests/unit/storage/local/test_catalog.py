"""SqliteDb: per-thread read connections beside the one writer (issue 16, query concurrency)."""

from __future__ import annotations

import threading
from pathlib import Path

from facesearch.storage.local.catalog import SqliteDb


def _db(tmp_path: Path) -> SqliteDb:
    db = SqliteDb(tmp_path / "meta.sqlite")
    with db.tx() as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
    return db


def test_reads_do_not_wait_for_a_writer_holding_the_lock(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.tx() as conn:
        conn.execute("INSERT INTO t VALUES (1)")
    inside = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with db.tx() as conn:
            conn.execute("INSERT INTO t VALUES (2)")
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert inside.wait(10)
    seen: list[list[int]] = []
    reader = threading.Thread(
        target=lambda: seen.append([r[0] for r in db.query("SELECT v FROM t ORDER BY v")])
    )
    reader.start()
    reader.join(5)
    finished_while_locked = not reader.is_alive()
    release.set()
    thread.join(10)
    reader.join(10)
    # the read completed while the writer still held the lock, and saw committed rows only
    assert finished_while_locked
    assert seen == [[1]]
    assert [r[0] for r in db.query("SELECT v FROM t ORDER BY v")] == [1, 2]
    db.close()


def test_a_read_inside_the_write_transaction_sees_its_own_rows(tmp_path: Path) -> None:
    db = _db(tmp_path)
    with db.tx() as conn:
        conn.execute("INSERT INTO t VALUES (7)")
        assert [r[0] for r in db.query("SELECT v FROM t")] == [7]
    assert [r[0] for r in db.query("SELECT v FROM t")] == [7]
    db.close()


def test_memory_databases_share_the_one_connection() -> None:
    db = SqliteDb(":memory:")
    with db.tx() as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
        conn.execute("INSERT INTO t VALUES (3)")
    out: list[int] = []
    worker = threading.Thread(target=lambda: out.extend(r[0] for r in db.query("SELECT v FROM t")))
    worker.start()
    worker.join(10)
    assert out == [3]
    db.close()
