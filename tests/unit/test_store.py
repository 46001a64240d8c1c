"""The checkpoint store on a real SQLite file in a temporary folder."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import trio
import trio.testing

from runtime.store import (
    DEFAULT_FILENAME,
    MIGRATIONS,
    Batch,
    RecordTypeError,
    StoreClosed,
    StoreCorrupt,
    StoreError,
    _Put,
    open_store,
    resolve_store_path,
)


class Phase(msgspec.Struct, frozen=True):
    name: str
    attempt: int = 0


class Report(msgspec.Struct, frozen=True):
    job: str
    exit_code: int


class Amount(msgspec.Struct, frozen=True):
    wei: int
    blob: bytes


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A wide-open umask, so only the store's explicit modes can keep files private."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


# -- records --------------------------------------------------------------------------------------


async def test_put_get_roundtrip_and_overwrite(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        assert await store.get("jobs", "0x1", Phase) is None
        await store.put("jobs", "0x1", Phase("claimed"))
        assert await store.get("jobs", "0x1", Phase) == Phase("claimed")
        await store.put("jobs", "0x1", Phase("submitted", attempt=2))
        assert await store.get("jobs", "0x1", Phase) == Phase("submitted", attempt=2)
        # Namespaces are separate.
        assert await store.get("other", "0x1", Phase) is None


async def test_big_integers_and_bytes_roundtrip(tmp_path: Path) -> None:
    record = Amount(wei=2**256 - 1, blob=b"\x00\xffscript")
    async with open_store(tmp_path) as store:
        await store.put("money", "a", record)
        assert await store.get("money", "a", Amount) == record


async def test_items_sorted_by_key_and_delete(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        for key in ("b", "c", "a"):
            await store.put("jobs", key, Phase(key))
        await store.put("elsewhere", "z", Phase("z"))
        assert await store.items("jobs", Phase) == [(k, Phase(k)) for k in ("a", "b", "c")]
        assert await store.delete("jobs", "b") is True
        assert await store.delete("jobs", "b") is False
        assert [key for key, _ in await store.items("jobs", Phase)] == ["a", "c"]


async def test_decode_into_wrong_type_names_the_record(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.put("jobs", "0xab", Phase("claimed"))
        with pytest.raises(RecordTypeError) as info:
            await store.get("jobs", "0xab", Report)
        message = str(info.value)
        assert "'jobs'/'0xab'" in message
        assert "Report" in message and "stored Phase" in message
        with pytest.raises(RecordTypeError, match="'jobs'/'0xab'"):
            await store.items("jobs", Report)


async def test_unencodable_record_is_a_record_type_error(tmp_path: Path) -> None:
    class Odd(msgspec.Struct):
        thing: object

    async with open_store(tmp_path) as store:
        with pytest.raises(RecordTypeError, match="cannot encode Odd"):
            await store.put("jobs", "x", Odd(object()))
        assert await store.items("jobs", Phase) == []


async def test_garbage_value_is_reported_corrupt(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.put("jobs", "x", Phase("ok"))
    with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as raw:
        raw.execute("UPDATE record SET value = '{not json' WHERE key = 'x'")
    async with open_store(tmp_path) as store:
        with pytest.raises(StoreCorrupt, match="'jobs'/'x'"):
            await store.get("jobs", "x", Phase)


# -- inboxes --------------------------------------------------------------------------------------


async def test_offer_is_deduplicated_by_key(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        assert await store.offer("reports", "r1", Report("0x1", 0)) is True
        assert await store.offer("reports", "r1", Report("0x1", 99)) is False
        assert await store.pending("reports", Report) == [("r1", Report("0x1", 0))]
        assert await store.count("reports") == 1
        # The same key in another box is another item.
        assert await store.offer("other", "r1", Report("0x1", 5)) is True


async def test_pending_is_in_arrival_order_not_key_order(tmp_path: Path) -> None:
    keys = ["zeta", "alpha", "mid", "beta"]
    async with open_store(tmp_path) as store:
        for n, key in enumerate(keys):
            await store.offer("box", key, Report(key, n))
        assert [key for key, _ in await store.pending("box", Report)] == keys
        assert [key for key, _ in await store.pending("box", Report, limit=2)] == keys[:2]


async def test_pending_by_key_prefix(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        for key in ["0xab/2/running", "0xa/1/running", "0xab/2/finished", "0xabc/3/running"]:
            await store.offer("box", key, Report(key, 0))
        await store.ack("box", "0xab/2/running")
        mine = await store.pending("box", Report, prefix="0xab/")
        assert [key for key, _ in mine] == ["0xab/2/finished"]
        assert len(await store.pending("box", Report, prefix="0xa")) == 3
        assert await store.pending("box", Report, prefix="0xz") == []


async def test_ack_is_idempotent_and_acked_keys_stay_refused(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.offer("box", "a", Report("a", 0))
        await store.offer("box", "b", Report("b", 1))
        assert await store.ack("box", "a") is True
        assert await store.ack("box", "a") is False
        assert await store.ack("box", "never-offered") is False
        assert await store.pending("box", Report) == [("b", Report("b", 1))]
        assert await store.count("box") == 1
        # A late duplicate of an acked item is refused and does not come back.
        assert await store.offer("box", "a", Report("a", 0)) is False
        assert await store.count("box") == 1
        # Purging the tombstones lets the key in again.
        assert await store.purge_acked("box") == 1
        assert await store.offer("box", "a", Report("a", 7)) is True
        assert [key for key, _ in await store.pending("box", Report)] == ["b", "a"]


async def test_discard_frees_a_key_pending_or_acked(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.offer("box", "forged", Report("f", 0))
        await store.offer("box", "done", Report("d", 1))
        await store.ack("box", "done")
        assert await store.discard("box", "forged") is True  # pending: gone, not a tombstone
        assert await store.discard("box", "done") is True  # acked: the tombstone goes too
        assert await store.discard("box", "never-offered") is False
        assert await store.count("box") == 0
        # Either key can be offered again, and the new record is the one kept.
        assert await store.offer("box", "forged", Report("genuine", 2)) is True
        assert await store.offer("box", "done", Report("d", 3)) is True
        assert await store.pending("box", Report) == [
            ("forged", Report("genuine", 2)),
            ("done", Report("d", 3)),
        ]
        async with store.transaction() as tx:
            tx.discard("box", "done")
        assert [key for key, _ in await store.pending("box", Report)] == ["forged"]


async def test_pending_decode_error_names_the_box(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.offer("box", "k", Report("x", 1))
        with pytest.raises(RecordTypeError, match=r"inbox 'box'/'k'.*Phase"):
            await store.pending("box", Phase)


# -- atomic groups --------------------------------------------------------------------------------


async def test_transaction_commits_everything_together(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.offer("reports", "r1", Report("0x1", 0))
        async with store.transaction() as tx:
            tx.put("jobs", "0x1", Phase("reported"))
            tx.ack("reports", "r1")
            tx.offer("outbox", "tx1", Report("0x1", 0))
            # Nothing is visible before the block ends.
            assert await store.get("jobs", "0x1", Phase) is None
        assert await store.get("jobs", "0x1", Phase) == Phase("reported")
        assert await store.pending("reports", Report) == []
        assert await store.count("outbox") == 1


async def test_commit_reports_each_write(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.offer("box", "dup", Report("d", 0))
        batch = Batch()
        batch.put("ns", "k", Phase("p"))
        batch.offer("box", "dup", Report("d", 1))
        batch.offer("box", "new", Report("n", 2))
        batch.ack("box", "missing")
        batch.delete("ns", "k")
        assert len(batch) == 5
        assert await store.commit(batch) == [True, False, True, False, True]
        assert await store.commit(Batch()) == []


async def test_exception_inside_transaction_writes_nothing(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.offer("reports", "r1", Report("0x1", 0))
        with pytest.raises(ZeroDivisionError):
            async with store.transaction() as tx:
                tx.put("jobs", "0x1", Phase("reported"))
                tx.ack("reports", "r1")
                _ = 1 / 0
        assert await store.get("jobs", "0x1", Phase) is None
        assert await store.count("reports") == 1


async def test_database_failure_midway_rolls_back_the_whole_batch(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        batch = Batch()
        batch.put("jobs", "first", Phase("written"))
        batch.ack("reports", "r")
        # A value SQLite cannot bind fails inside the transaction, after the first writes ran.
        batch._ops.append(_Put("jobs", "bad", "Phase", object()))  # type: ignore[arg-type]
        batch.put("jobs", "last", Phase("written"))
        with pytest.raises(StoreError):
            await store.commit(batch)
        assert await store.items("jobs", Phase) == []
        # The store keeps working afterwards.
        await store.put("jobs", "after", Phase("ok"))
        assert await store.get("jobs", "after", Phase) == Phase("ok")


async def test_one_failing_writer_does_not_undo_its_group(tmp_path: Path) -> None:
    """Concurrent writers share a commit, but each succeeds or fails alone."""
    async with open_store(tmp_path) as store:
        failures: list[BaseException] = []

        async def good(n: int) -> None:
            await store.put("jobs", f"good{n:02d}", Phase("ok", n))

        async def bad() -> None:
            batch = Batch()
            batch.put("jobs", "bad-first", Phase("no"))
            batch._ops.append(_Put("jobs", "bad", "Phase", object()))  # type: ignore[arg-type]
            try:
                await store.commit(batch)
            except StoreError as exc:
                failures.append(exc)

        async with trio.open_nursery() as nursery:
            for n in range(10):
                nursery.start_soon(good, n)
                if n == 5:
                    nursery.start_soon(bad)
        assert len(failures) == 1
        keys = [key for key, _ in await store.items("jobs", Phase)]
        assert keys == [f"good{n:02d}" for n in range(10)]


# -- concurrency and statistics -------------------------------------------------------------------


async def test_concurrent_writers_share_commits(tmp_path: Path) -> None:
    tasks, each = 20, 25
    async with open_store(tmp_path) as store:

        async def writer(task: int) -> None:
            for n in range(each):
                await store.put("w", f"{task:02d}-{n:03d}", Phase("p", n))
                if n % 5 == 0:
                    await store.offer("box", f"{task:02d}-{n:03d}", Report("j", n))

        async with trio.open_nursery() as nursery:
            for task in range(tasks):
                nursery.start_soon(writer, task)

        records = await store.items("w", Phase)
        assert len(records) == tasks * each
        assert dict(records)["07-013"] == Phase("p", 13)
        assert await store.count("box") == tasks * 5
        stats = store.statistics()
        assert stats.writes == tasks * each + tasks * 5
        assert stats.commits < stats.writes  # group commit happened
        assert stats.pending_writes == 0 and stats.pending_reads == 0
        assert stats.reads >= 2
        assert stats.last_commit_latency is not None and stats.last_commit_latency > 0


async def test_cancelled_before_the_call_writes_nothing(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        with trio.CancelScope() as scope:
            scope.cancel()
            await store.put("jobs", "x", Phase("never"))
        assert scope.cancelled_caught
        assert await store.get("jobs", "x", Phase) is None


async def test_write_in_flight_completes_despite_cancellation(tmp_path: Path) -> None:
    returned: list[bool] = []
    async with open_store(tmp_path) as store:
        async with trio.open_nursery() as nursery:

            async def write() -> None:
                await store.put("jobs", "x", Phase("durable"))
                returned.append(True)  # put returned normally: the cancel waits for the commit
                await trio.sleep_forever()

            nursery.start_soon(write)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        assert returned == [True]
        assert await store.get("jobs", "x", Phase) == Phase("durable")


# -- files, pragmas, lifecycle --------------------------------------------------------------------


async def test_files_are_private(tmp_path: Path, open_umask: None) -> None:
    state = tmp_path / "state" / "nested"
    async with open_store(state) as store:
        await store.put("jobs", "x", Phase("p"))
        assert store.path == state / DEFAULT_FILENAME
        assert mode_of(state) == 0o700
        for name in (DEFAULT_FILENAME, f"{DEFAULT_FILENAME}-wal", f"{DEFAULT_FILENAME}-shm"):
            assert mode_of(state / name) == 0o600, name


async def test_existing_loose_file_is_tightened(tmp_path: Path) -> None:
    file = tmp_path / "store.db"
    file.touch(mode=0o644)
    file.chmod(0o644)
    async with open_store(file) as store:
        assert store.path == file
        await store.put("jobs", "x", Phase("p"))
    assert mode_of(file) == 0o600


async def test_wal_mode_synchronous_full_and_schema_version(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:

        def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int]:
            return (
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("PRAGMA synchronous").fetchone()[0],
                conn.execute("PRAGMA user_version").fetchone()[0],
            )

        assert await store._submit(False, pragmas) == ("wal", 2, len(MIGRATIONS))
        await store.integrity_check()


async def test_reopen_after_close_keeps_everything(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.put("jobs", "0x1", Phase("claimed"))
        await store.offer("box", "a", Report("a", 1))
        await store.offer("box", "b", Report("b", 2))
        await store.ack("box", "a")
    with pytest.raises(StoreClosed):
        await store.get("jobs", "0x1", Phase)
    await store.aclose()  # idempotent
    async with open_store(tmp_path) as store:
        assert await store.get("jobs", "0x1", Phase) == Phase("claimed")
        assert await store.pending("box", Report) == [("b", Report("b", 2))]
        assert await store.offer("box", "a", Report("a", 1)) is False


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    async with open_store(tmp_path):
        pass
    with sqlite3.connect(tmp_path / DEFAULT_FILENAME) as raw:
        raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this program"):
        async with open_store(tmp_path):
            pass


async def test_not_a_database_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / DEFAULT_FILENAME).write_bytes(b"this is not an SQLite file at all" * 100)
    with pytest.raises(StoreCorrupt):
        async with open_store(tmp_path):
            pass


def test_resolve_store_path(tmp_path: Path) -> None:
    assert resolve_store_path(tmp_path) == tmp_path / DEFAULT_FILENAME
    assert resolve_store_path(tmp_path / "state") == tmp_path / "state" / DEFAULT_FILENAME
    assert resolve_store_path(tmp_path / "x.db") == tmp_path / "x.db"
