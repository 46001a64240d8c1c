"""The checkpoint store: typed records and durable inboxes in one SQLite file.

An actor whose state matters writes it here *before* it acts, so that a restart (of the actor or of
the whole process) resumes instead of starting over. This module knows nothing of what the records
mean; it offers two shapes of durable state:

Records
    ``put(namespace, key, record)`` / ``get(namespace, key, Type)`` / ``items(namespace, Type)`` /
    ``delete(namespace, key)``: the latest value per key, e.g. one actor's phase.

Inboxes
    ``offer(box, key, record)`` / ``pending(box, Type)`` / ``ack(box, key)`` / ``count(box)``:
    work that arrived and is not yet done, in arrival order. An offer is deduplicated by its key,
    *forever*: an acked key stays behind as a tombstone (its record dropped) so a late duplicate is
    refused too; ``purge_acked(box)`` forgets tombstones once duplicates can no longer arrive.
    ``discard(box, key)`` forgets one key entirely (pending or acked): a record found to be
    worthless (a forgery) must not keep the place of a genuine one offered later under that key.

Several writes can be committed together, all or nothing, with ``async with store.transaction() as
tx:`` (or a `Batch` passed to `Store.commit`), e.g. "the new phase *and* the ack of the report that
caused it".

Durability. The database runs in WAL mode with ``synchronous=FULL``: when a write call returns, its
commit has been fsynced, and a ``kill -9`` (or a power cut) at any moment leaves the file consistent
with every returned write in it. If the calling task is cancelled while its write is in flight, the
call still waits for the commit (a few milliseconds) and then returns normally; cancellation is
honoured at the caller's next checkpoint. A call that is cancelled before it starts writes nothing.

Threads. One worker thread owns the only connection, so SQLite never blocks the trio loop. Requests
queue up while a commit is in progress and the worker then commits all queued writes in one
transaction ("group commit"): one fsync serves many writers. Each write still succeeds or fails on
its own: it runs inside its own savepoint, so one failing request does not undo its neighbours.
Reads go through the same worker and only ever see committed data.

Encoding. Records are msgspec Structs encoded as JSON (stored as TEXT, with the Struct's class name
beside it). JSON rather than msgpack because it carries integers of any size (uint256 amounts, job
ids) and an operator can read the store with the ``sqlite3`` shell (``json_extract(value, '$.x')``).
A record is decoded into the type the caller asks for; a mismatch raises `RecordTypeError` naming
the namespace, the key, the stored class and the expected type.

Files. The database is ``<state folder>/checkpoints.sqlite3``, created with mode 0600 (SQLite gives
its ``-wal`` and ``-shm`` files the same mode); a missing state folder is created with mode 0700.

Schema. `MIGRATIONS` is an append-only list; ``PRAGMA user_version`` records how many have been
applied. To add a table, append a new tuple of statements, never edit an old one.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple, TypeAlias, TypeVar, cast

import msgspec
import trio

__all__ = [
    "DEFAULT_FILENAME",
    "MIGRATIONS",
    "Batch",
    "RecordTypeError",
    "Store",
    "StoreClosed",
    "StoreCorrupt",
    "StoreError",
    "StoreStatistics",
    "open_store",
    "resolve_store_path",
]

R = TypeVar("R", bound=msgspec.Struct)
T = TypeVar("T")

DEFAULT_FILENAME: Final = "checkpoints.sqlite3"
"""The file name used when `open_store` is given a folder."""

MAX_GROUP: Final = 256
"""At most this many queued requests are served together (one transaction for their writes)."""

FILE_MODE: Final = 0o600
FOLDER_MODE: Final = 0o700

_SQLITE_CORRUPT: Final = 11
_SQLITE_NOTADB: Final = 26


# -- errors ---------------------------------------------------------------------------------------


class StoreError(Exception):
    """The checkpoint store failed (I/O, locking, a database error). The root of store errors."""


class StoreClosed(StoreError):
    """The store was used after `Store.aclose` (or after `open_store` exited)."""


class StoreCorrupt(StoreError):
    """The file is not a database, SQLite reports it damaged, or a stored value is not JSON."""


class RecordTypeError(StoreError):
    """A record cannot be encoded, or a stored record does not decode into the requested type."""


# -- schema ---------------------------------------------------------------------------------------

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: records (latest value per namespace/key) and inboxes (arrival-ordered, deduplicated).
    (
        """
        CREATE TABLE record (
            namespace TEXT NOT NULL,
            key TEXT NOT NULL,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (namespace, key)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE inbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            box TEXT NOT NULL,
            key TEXT NOT NULL,
            kind TEXT NOT NULL,
            value TEXT,
            acked INTEGER NOT NULL DEFAULT 0,
            UNIQUE (box, key)
        )
        """,
        "CREATE INDEX inbox_pending ON inbox (box, seq) WHERE acked = 0",
    ),
)
"""Schema steps, applied in order; ``PRAGMA user_version`` is the number already applied."""


def _migrate(conn: sqlite3.Connection, file: Path) -> None:
    """Bring the schema up to date in one transaction, or refuse a schema newer than ours."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{file}: schema version {version} is newer than this program knows "
                f"({len(MIGRATIONS)}); refusing to open it"
            )
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def resolve_store_path(path_or_folder: str | os.PathLike[str]) -> Path:
    """The database file for `open_store`'s argument.

    An existing folder, or a path without a suffix, is the state folder and the file is
    ``<folder>/checkpoints.sqlite3``; anything else (``state/other.db``) is the file itself.
    """
    path = Path(path_or_folder)
    if path.is_dir() or not path.suffix:
        return path / DEFAULT_FILENAME
    return path


def _prepare_files(file: Path) -> None:
    """Create the state folder (0700) and the database file (0600) before SQLite opens it."""
    folder = file.parent
    if not folder.exists():
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode is filtered by the umask
    fd = os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # also tightens a file that already existed
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{file}{suffix}", FILE_MODE)


def _connect(file: Path) -> sqlite3.Connection:
    """Open the database in WAL mode with synchronous commits and an up-to-date schema."""
    _prepare_files(file)
    # isolation_level=None: we issue BEGIN/COMMIT ourselves.
    conn = sqlite3.connect(file, isolation_level=None, timeout=10.0)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{file}: cannot switch to WAL mode (journal_mode is {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        _migrate(conn, file)
    except BaseException:
        conn.close()
        raise
    return conn


# -- write operations (also the contents of a Batch) ----------------------------------------------


class _Put(NamedTuple):
    namespace: str
    key: str
    kind: str
    value: str


class _Delete(NamedTuple):
    namespace: str
    key: str


class _Offer(NamedTuple):
    box: str
    key: str
    kind: str
    value: str


class _Ack(NamedTuple):
    box: str
    key: str


class _Discard(NamedTuple):
    box: str
    key: str


class _PurgeAcked(NamedTuple):
    box: str


_Op: TypeAlias = _Put | _Delete | _Offer | _Ack | _Discard | _PurgeAcked


def _apply(conn: sqlite3.Connection, op: _Op) -> int:
    """Perform one write; the number of rows it changed (0 = a duplicate offer, an unknown key)."""
    match op:
        case _Put(namespace, key, kind, value):
            cursor = conn.execute(
                "INSERT INTO record (namespace, key, kind, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (namespace, key) DO UPDATE SET kind = excluded.kind, "
                "value = excluded.value",
                (namespace, key, kind, value),
            )
        case _Delete(namespace, key):
            cursor = conn.execute(
                "DELETE FROM record WHERE namespace = ? AND key = ?", (namespace, key)
            )
        case _Offer(box, key, kind, value):
            cursor = conn.execute(
                "INSERT INTO inbox (box, key, kind, value) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (box, key) DO NOTHING",
                (box, key, kind, value),
            )
        case _Ack(box, key):
            cursor = conn.execute(
                "UPDATE inbox SET acked = 1, value = NULL WHERE box = ? AND key = ? AND acked = 0",
                (box, key),
            )
        case _Discard(box, key):
            cursor = conn.execute("DELETE FROM inbox WHERE box = ? AND key = ?", (box, key))
        case _PurgeAcked(box):
            cursor = conn.execute("DELETE FROM inbox WHERE box = ? AND acked = 1", (box,))
    return cursor.rowcount


def _apply_all(conn: sqlite3.Connection, ops: Sequence[_Op]) -> list[int]:
    return [_apply(conn, op) for op in ops]


_ENCODER: Final = msgspec.json.Encoder()


def _encode(where: str, record: msgspec.Struct) -> tuple[str, str]:
    """The stored form of a record: (class name, JSON text)."""
    try:
        return type(record).__name__, _ENCODER.encode(record).decode()
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as exc:
        raise RecordTypeError(f"{where}: cannot encode {type(record).__name__}: {exc}") from exc


class Batch:
    """Writes recorded now and committed later in one transaction: all of them, or none.

    Recording does no I/O and cannot block; `Store.commit` (or leaving ``store.transaction()``)
    performs the writes in the order they were recorded.
    """

    def __init__(self) -> None:
        self._ops: list[_Op] = []

    def __len__(self) -> int:
        return len(self._ops)

    def put(self, namespace: str, key: str, record: msgspec.Struct) -> None:
        """Record `Store.put`."""
        kind, value = _encode(f"record {namespace!r}/{key!r}", record)
        self._ops.append(_Put(namespace, key, kind, value))

    def delete(self, namespace: str, key: str) -> None:
        """Record `Store.delete`."""
        self._ops.append(_Delete(namespace, key))

    def offer(self, box: str, key: str, record: msgspec.Struct) -> None:
        """Record `Store.offer` (`Store.commit` reports whether it was accepted)."""
        kind, value = _encode(f"inbox {box!r}/{key!r}", record)
        self._ops.append(_Offer(box, key, kind, value))

    def ack(self, box: str, key: str) -> None:
        """Record `Store.ack`."""
        self._ops.append(_Ack(box, key))

    def discard(self, box: str, key: str) -> None:
        """Record `Store.discard`."""
        self._ops.append(_Discard(box, key))


# -- the store ------------------------------------------------------------------------------------


class StoreStatistics(msgspec.Struct, frozen=True):
    """A snapshot of `Store` activity (see `Store.statistics`)."""

    writes: int
    """Write requests served (a `Batch` counts once)."""
    reads: int
    """Read requests served."""
    commits: int
    """Transactions committed; ``writes / commits`` is the group-commit factor."""
    pending_writes: int
    """Write requests queued or in flight right now."""
    pending_reads: int
    """Read requests queued or in flight right now."""
    last_commit_latency: float | None
    """Seconds from BEGIN to the durable end of COMMIT of the latest transaction."""


_Reply: TypeAlias = Callable[[object, BaseException | None], None]


@dataclass(slots=True)
class _Request:
    write: bool
    work: Callable[[sqlite3.Connection], object]
    reply: _Reply


_STOP: Final = object()


class Store:
    """A checkpoint store on one SQLite file; get one from `open_store`.

    Every method is an async call served by the store's worker thread; write methods return once
    their commit is durable.
    """

    def __init__(self, file: Path) -> None:
        self._file = file
        self._requests: queue.SimpleQueue[_Request | object] = queue.SimpleQueue()
        self._decoders: dict[type, msgspec.json.Decoder[object]] = {}
        self._token: trio.lowlevel.TrioToken | None = None
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._closing = False
        self._broken: str | None = None
        self._writes = 0
        self._reads = 0
        self._commits = 0
        self._pending_writes = 0
        self._pending_reads = 0
        self._last_commit_latency: float | None = None

    @property
    def path(self) -> Path:
        """The database file."""
        return self._file

    # -- records ----------------------------------------------------------------------------------

    async def put(self, namespace: str, key: str, record: msgspec.Struct) -> None:
        """Store `record` under (namespace, key), replacing any previous record there."""
        kind, value = _encode(f"record {namespace!r}/{key!r}", record)
        await self._write([_Put(namespace, key, kind, value)])

    async def get(self, namespace: str, key: str, type_: type[R]) -> R | None:
        """The record under (namespace, key) decoded as `type_`, or None if there is none."""

        def work(conn: sqlite3.Connection) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT kind, value FROM record WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
            return cast("tuple[str, str] | None", row)

        row = await self._submit(False, work)
        if row is None:
            return None
        return self._decode(f"record {namespace!r}/{key!r}", row[0], row[1], type_)

    async def items(self, namespace: str, type_: type[R]) -> list[tuple[str, R]]:
        """Every (key, record) of `namespace`, sorted by key, each decoded as `type_`."""

        def work(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
            return conn.execute(
                "SELECT key, kind, value FROM record WHERE namespace = ? ORDER BY key",
                (namespace,),
            ).fetchall()

        rows = await self._submit(False, work)
        return [
            (key, self._decode(f"record {namespace!r}/{key!r}", kind, value, type_))
            for key, kind, value in rows
        ]

    async def delete(self, namespace: str, key: str) -> bool:
        """Remove the record under (namespace, key); whether there was one."""
        (changed,) = await self._write([_Delete(namespace, key)])
        return changed > 0

    # -- inboxes ----------------------------------------------------------------------------------

    async def offer(self, box: str, key: str, record: msgspec.Struct) -> bool:
        """Add `record` to `box` under `key`; False (and no change) if `key` was ever offered."""
        kind, value = _encode(f"inbox {box!r}/{key!r}", record)
        (changed,) = await self._write([_Offer(box, key, kind, value)])
        return changed > 0

    async def pending(
        self, box: str, type_: type[R], *, limit: int | None = None, prefix: str = ""
    ) -> list[tuple[str, R]]:
        """The unacked (key, record) pairs of `box` in arrival order (the first `limit` of them),
        only those whose key starts with `prefix` when one is given (keys are compared as
        text; a prefix must not contain U+10FFFF)."""

        def work(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
            return conn.execute(
                "SELECT key, kind, value FROM inbox WHERE box = ? AND acked = 0 "
                "AND key >= ? AND key < ? ORDER BY seq LIMIT ?",
                (box, prefix, prefix + "\U0010ffff", -1 if limit is None else limit),
            ).fetchall()

        rows = await self._submit(False, work)
        return [
            (key, self._decode(f"inbox {box!r}/{key!r}", kind, value, type_))
            for key, kind, value in rows
        ]

    async def ack(self, box: str, key: str) -> bool:
        """Mark `key` of `box` done; True if it was pending, False if already acked or unknown."""
        (changed,) = await self._write([_Ack(box, key)])
        return changed > 0

    async def discard(self, box: str, key: str) -> bool:
        """Forget `key` of `box` entirely, pending or acked (it can then be offered again);
        whether it was there."""
        (changed,) = await self._write([_Discard(box, key)])
        return changed > 0

    async def count(self, box: str) -> int:
        """How many records of `box` are pending (offered and not acked)."""

        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM inbox WHERE box = ? AND acked = 0", (box,)
            ).fetchone()
            return int(row[0])

        return await self._submit(False, work)

    async def purge_acked(self, box: str) -> int:
        """Forget the acked keys of `box` (they can then be offered again); how many."""
        (changed,) = await self._write([_PurgeAcked(box)])
        return changed

    # -- atomic groups of writes ------------------------------------------------------------------

    async def commit(self, batch: Batch) -> list[bool]:
        """Perform every write of `batch` in one transaction, all or nothing.

        Returns one flag per recorded write, in order: for ``offer`` whether it was accepted, for
        ``delete``/``ack``/``discard`` whether there was something to act on, for ``put``
        always True.
        """
        if not batch._ops:
            await trio.lowlevel.checkpoint()
            return []
        return [changed > 0 for changed in await self._write(list(batch._ops))]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Batch]:
        """Record writes in the block, commit them all when it exits; nothing if it raises."""
        batch = Batch()
        yield batch
        await self.commit(batch)

    # -- maintenance ------------------------------------------------------------------------------

    async def integrity_check(self) -> None:
        """Run SQLite's ``PRAGMA integrity_check``; raise `StoreCorrupt` unless it says ok."""

        def work(conn: sqlite3.Connection) -> list[str]:
            return [str(row[0]) for row in conn.execute("PRAGMA integrity_check").fetchall()]

        problems = await self._submit(False, work)
        if problems != ["ok"]:
            raise StoreCorrupt(f"{self._file}: integrity check failed: {'; '.join(problems[:5])}")

    def statistics(self) -> StoreStatistics:
        """Counters of the work done so far and queued now."""
        return StoreStatistics(
            writes=self._writes,
            reads=self._reads,
            commits=self._commits,
            pending_writes=self._pending_writes,
            pending_reads=self._pending_reads,
            last_commit_latency=self._last_commit_latency,
        )

    # -- lifecycle --------------------------------------------------------------------------------

    async def _start(self) -> None:
        """Start the worker thread; it opens (and if need be creates and migrates) the database."""
        self._token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        failure: list[BaseException] = []

        def started(error: BaseException | None) -> None:
            if error is not None:
                failure.append(error)
            done.set()

        self._thread = threading.Thread(
            target=self._serve, args=(started,), name=f"store {self._file.name}", daemon=True
        )
        self._thread.start()
        with trio.CancelScope(shield=True):
            await done.wait()
        if failure:
            self._closing = True
            raise failure[0]

    async def aclose(self) -> None:
        """Finish the queued requests, close the database and stop the worker. Idempotent."""
        if not self._closing:
            self._closing = True
            self._requests.put(_STOP)
        thread = self._thread
        if thread is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(thread.join)

    # -- the trio side of a request ---------------------------------------------------------------

    async def _write(self, ops: list[_Op]) -> list[int]:
        return await self._submit(True, lambda conn: _apply_all(conn, ops))

    async def _submit(self, write: bool, work: Callable[[sqlite3.Connection], T]) -> T:
        """Queue `work` for the worker thread and wait (uncancellably) for its outcome."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._closing:
            raise StoreClosed(f"{self._file}: the store is closed")
        if self._broken is not None:
            raise StoreError(f"{self._file}: the store worker failed: {self._broken}")
        token = self._token
        assert token is not None
        done = trio.Event()
        outcome: list[tuple[object, BaseException | None]] = []

        def arrive(result: object, error: BaseException | None) -> None:  # in the trio thread
            if not done.is_set():
                outcome.append((result, error))
                done.set()

        def reply(result: object, error: BaseException | None) -> None:  # in the worker thread
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(arrive, result, error)

        if write:
            self._pending_writes += 1
        else:
            self._pending_reads += 1
        try:
            self._requests.put(_Request(write, work, reply))
            with trio.CancelScope(shield=True):
                await done.wait()
        finally:
            if write:
                self._pending_writes -= 1
            else:
                self._pending_reads -= 1
        result, error = outcome[0]
        if error is not None:
            raise error
        return cast(T, result)

    def _decode(self, where: str, kind: str, value: str, type_: type[R]) -> R:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.json.Decoder(type_)
        try:
            return cast(R, decoder.decode(value))
        except msgspec.ValidationError as exc:
            raise RecordTypeError(
                f"{where}: stored {kind} does not decode as {type_.__name__}: {exc}"
            ) from exc
        except msgspec.DecodeError as exc:
            raise StoreCorrupt(f"{where}: stored {kind} is not valid JSON: {exc}") from exc

    # -- the worker thread ------------------------------------------------------------------------

    def _serve(self, started: Callable[[BaseException | None], None]) -> None:
        """The worker thread: open the database, then serve queued requests in groups."""
        token = self._token
        assert token is not None
        try:
            self._conn = _connect(self._file)
        except BaseException as exc:
            token.run_sync_soon(started, self._error(exc))
            return
        token.run_sync_soon(started, None)
        try:
            stopping = False
            while not stopping:
                group: list[_Request] = []
                item = self._requests.get()
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    group.append(cast(_Request, item))
                    if len(group) >= MAX_GROUP:
                        break
                    try:
                        item = self._requests.get_nowait()
                    except queue.Empty:
                        break
                self._serve_group(group)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            self._broken = repr(exc)
            self._fail_queued(exc)
            raise
        finally:
            self._conn.close()

    def _serve_group(self, group: list[_Request]) -> None:
        """Serve requests in order; each run of consecutive writes is one transaction."""
        writes: list[_Request] = []
        for request in group:
            if request.write:
                writes.append(request)
                continue
            if writes:
                self._commit_writes(writes)
                writes = []
            self._read(request)
        if writes:
            self._commit_writes(writes)

    def _read(self, request: _Request) -> None:
        conn = self._conn
        assert conn is not None
        try:
            result = request.work(conn)
        except BaseException as exc:
            self._reads += 1
            request.reply(None, self._error(exc))
        else:
            self._reads += 1  # count before replying, so the caller sees its own read counted
            request.reply(result, None)

    def _commit_writes(self, writes: list[_Request]) -> None:
        """One transaction for several requests, each inside its own savepoint."""
        conn = self._conn
        assert conn is not None
        outcomes: list[tuple[object, BaseException | None]] = []
        began = time.perf_counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for request in writes:
                conn.execute("SAVEPOINT request")
                try:
                    result = request.work(conn)
                except BaseException as exc:
                    if not conn.in_transaction:  # SQLite itself rolled back everything
                        raise
                    conn.execute("ROLLBACK TO request")
                    conn.execute("RELEASE request")
                    outcomes.append((None, self._error(exc)))
                else:
                    conn.execute("RELEASE request")
                    outcomes.append((result, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            for request in writes:
                request.reply(None, self._error(exc))
            return
        self._last_commit_latency = time.perf_counter() - began
        self._commits += 1
        self._writes += len(writes)
        for request, (result, error) in zip(writes, outcomes, strict=True):
            request.reply(result, error)

    def _fail_queued(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._requests.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Request):
                item.reply(None, StoreError(f"{self._file}: the store worker failed: {exc!r}"))

    def _error(self, exc: BaseException) -> BaseException:
        """Our own error for a SQLite or OS failure; anything else (a bug) passes unchanged."""
        if isinstance(exc, sqlite3.Error):
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                error: StoreError = StoreCorrupt(f"{self._file}: {exc}")
            else:
                error = StoreError(f"{self._file}: {exc}")
            error.__cause__ = exc
            return error
        if isinstance(exc, OSError):
            error = StoreError(f"{self._file}: {exc}")
            error.__cause__ = exc
            return error
        return exc


@contextlib.asynccontextmanager
async def open_store(path_or_folder: str | os.PathLike[str]) -> AsyncIterator[Store]:
    """Open (creating if need be) the checkpoint store; close it when the block exits.

    `path_or_folder` is a state folder (the file is ``<folder>/checkpoints.sqlite3``) or a database
    file path with a suffix; see `resolve_store_path`.
    """
    store = Store(resolve_store_path(path_or_folder))
    await store._start()
    try:
        yield store
    finally:
        await store.aclose()
