"""The reporter's spool: the folder of undelivered reports, trusted only when nobody else can
have written to it.

The reporter runs as SLURM's user (root, usually) and sends what it reads from the spool to the
supervisor, with the reporters' secret: a file in the spool must have been written by the
reporter itself. So the folder is used only when

- it is a real folder (never a symbolic link), owned by the user running the reporter and
  writable by nobody else (no group or other write bit);
- each of its parent folders is owned by root or that user and, when writable by group or
  others, has the sticky bit (as ``/tmp``): nobody else can rename the spool folder away and put
  another in its place.

Once opened, every operation goes through the folder's descriptor (``dir_fd``), never through its
path again, and never follows a symbolic link (``O_NOFOLLOW``; ``rejected/`` and ``expired/``
included). An entry is read only when it is a regular file owned by the user, with one link,
writable by nobody else and no larger than a report can be; anything else is refused
(:class:`EntryRefused`) and set aside by the caller, never delivered.

Only ``os`` and ``stat`` are imported: this runs in every job's prolog.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = [
    "MAX_ENTRY_BYTES",
    "EntryRefused",
    "Spool",
    "SpoolRefused",
    "folder_problem",
    "parents_problem",
]

MAX_ENTRY_BYTES: Final = 4096
"""A spooled report is about 200 bytes; anything larger was not written by the reporter."""
STALE_TEMPORARY_SECONDS: Final = 3600.0
"""A temporary file this old was left by a reporter that crashed while writing it."""

_NOFOLLOW_READ: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_FOLDER: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE: Final = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class SpoolRefused(Exception):
    """The spool folder cannot be trusted or used; the message names it and the fix."""


class EntryRefused(Exception):
    """A spooled entry the reporter did not write, or cannot read safely; the message is why."""


def _user(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (KeyError, OverflowError):
        return f"uid {uid}"


def folder_problem(path: str | os.PathLike[str], status: os.stat_result) -> str | None:
    """Why a folder (``status`` from ``fstat``/``lstat``) cannot hold reports; None if it can."""
    me = os.geteuid()
    if stat.S_ISLNK(status.st_mode):
        return f"{path} is a symbolic link: make it a real folder (mkdir -m 700 {path})"
    if not stat.S_ISDIR(status.st_mode):
        return f"{path} is not a folder: move it away, or point the spool elsewhere"
    if status.st_uid != me:
        return (
            f"{path} is owned by {_user(status.st_uid)}, not by {_user(me)} who runs the "
            f"reporter: chown {me} {path} (or run the reporter as its owner)"
        )
    if status.st_mode & 0o022:
        return (
            f"{path} is writable by group or others (mode {stat.S_IMODE(status.st_mode):04o}): "
            f"chmod go-w {path}"
        )
    return None


def parents_problem(path: Path) -> str | None:
    """Why one of the parent folders of ``path`` would let another user swap the folder (owned
    by someone else than root and the reporter's user, or writable by others without the sticky
    bit); None when they are safe. Missing parents are fine: they will be created."""
    me = os.geteuid()
    for parent in reversed(path.parents):
        try:
            status = os.stat(parent)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return f"cannot check {parent}, a parent of the spool folder: {_why(exc)}"
        if not stat.S_ISDIR(status.st_mode):
            return f"{parent}, a parent of the spool folder {path}, is not a folder"
        if status.st_uid not in (0, me):
            return (
                f"{parent}, a parent of the spool folder {path}, is owned by "
                f"{_user(status.st_uid)}, who could put another folder in its place: keep the "
                f"spool under folders owned by root"
            )
        if status.st_mode & 0o022 and not status.st_mode & stat.S_ISVTX:
            return (
                f"{parent}, a parent of the spool folder {path}, is writable by group or others "
                f"(mode {stat.S_IMODE(status.st_mode):04o}): chmod go-w {parent}"
            )
    return None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _make_folders(path: Path) -> None:
    """Create ``path`` (0700) and its missing parents (0755), without following a link."""
    missing: list[Path] = []
    folder = path
    while True:
        try:
            os.lstat(folder)
            break
        except FileNotFoundError:
            missing.append(folder)
            if folder.parent == folder:
                break
            folder = folder.parent
        except (OSError, ValueError) as exc:
            raise SpoolRefused(f"cannot create the spool folder {path}: {_why(exc)}") from None
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700 if folder == path else 0o755)
        except FileExistsError:
            pass
        except (OSError, ValueError) as exc:
            raise SpoolRefused(f"cannot create the spool folder {folder}: {_why(exc)}") from None


class Spool:
    """An open, trusted spool folder; every operation goes through its descriptor."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._asides: dict[str, int] = {}

    @classmethod
    def open(cls, path: Path) -> Spool | None:
        """The spool at ``path``; None when it does not exist. Raises :class:`SpoolRefused`
        when it cannot be trusted."""
        return cls._open(path, create=False)

    @classmethod
    def make(cls, path: Path) -> Spool:
        """The spool at ``path``, created (0700, parents 0755) if missing. Raises
        :class:`SpoolRefused` when it cannot be trusted or made."""
        made = cls._open(path, create=True)
        if made is None:
            raise SpoolRefused(f"the spool folder {path} vanished as it was made")
        return made

    @classmethod
    def _open(cls, path: Path, *, create: bool) -> Spool | None:
        try:
            valid = b"\0" not in os.fsencode(path)
        except UnicodeError:
            valid = False
        if not valid:
            raise SpoolRefused(f"the spool folder {str(path)!r} is not a valid path")
        if not path.is_absolute():
            raise SpoolRefused(f"the spool folder {path} is not an absolute path")
        problem = parents_problem(path)
        if problem is not None:
            raise SpoolRefused(problem)
        if create:
            _make_folders(path)
        try:
            fd = os.open(path, _FOLDER)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SpoolRefused(_open_problem(path, exc)) from None
        try:
            problem = folder_problem(path, os.fstat(fd))
        except OSError as exc:
            problem = f"cannot check the spool folder {path}: {_why(exc)}"
        if problem is not None:
            os.close(fd)
            raise SpoolRefused(problem)
        return cls(path, fd)

    def close(self) -> None:
        for fd in self._asides.values():
            os.close(fd)
        self._asides.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- entries -------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The spooled reports' names (``*.json``, not hidden), oldest first (by name)."""
        try:
            names = os.listdir(self._fd)
        except OSError as exc:
            raise SpoolRefused(f"cannot list the spool folder {self.path}: {_why(exc)}") from None
        return sorted(n for n in names if n.endswith(".json") and not n.startswith("."))

    def write(self, name: str, data: bytes) -> None:
        """Write ``name`` whole (a temporary file renamed; 0600; synced)."""
        temporary = f".{name}.tmp"
        fd = os.open(temporary, _NEW_FILE, 0o600, dir_fd=self._fd)
        try:
            with contextlib.suppress(OSError):  # an inherited ACL or umask must not widen it
                os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=self._fd)
            raise
        os.close(fd)
        os.replace(temporary, name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        with contextlib.suppress(OSError):
            os.fsync(self._fd)

    def read(self, name: str) -> tuple[bytes, float]:
        """(content, modification time) of an entry the reporter wrote. Raises
        :class:`EntryRefused` for anything else, FileNotFoundError when it is gone."""
        before = os.stat(name, dir_fd=self._fd, follow_symlinks=False)
        self._check_entry(before)  # nothing but a regular file is ever opened
        try:
            fd = os.open(name, _NOFOLLOW_READ, dir_fd=self._fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise EntryRefused("a symbolic link") from None
            raise
        try:
            status = os.fstat(fd)
            if (status.st_dev, status.st_ino) != (before.st_dev, before.st_ino):
                raise EntryRefused("replaced while it was being read")
            self._check_entry(status)
            content = os.read(fd, MAX_ENTRY_BYTES + 1)
        finally:
            os.close(fd)
        if len(content) > MAX_ENTRY_BYTES:
            raise EntryRefused(f"larger than {MAX_ENTRY_BYTES} bytes")
        return content, status.st_mtime

    @staticmethod
    def _check_entry(status: os.stat_result) -> None:
        if stat.S_ISLNK(status.st_mode):
            raise EntryRefused("a symbolic link")
        if not stat.S_ISREG(status.st_mode):
            raise EntryRefused("not a regular file")
        if status.st_uid != os.geteuid():
            raise EntryRefused(f"owned by {_user(status.st_uid)}, not by the reporter's user")
        if status.st_mode & 0o022:
            raise EntryRefused(f"writable by group or others ({stat.S_IMODE(status.st_mode):04o})")
        if status.st_nlink != 1:
            raise EntryRefused(f"has {status.st_nlink} hard links")
        if status.st_size > MAX_ENTRY_BYTES:
            raise EntryRefused(f"larger than {MAX_ENTRY_BYTES} bytes")

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self._fd)

    def set_aside(self, name: str, why: str, reason: str | None) -> str | None:
        """Move an entry into ``<spool>/<why>/``, with ``<name>.reason`` beside it when a reason
        is given; None when done, else why it could not be (the entry then stays)."""
        try:
            aside = self._aside(why)
            os.replace(name, name, src_dir_fd=self._fd, dst_dir_fd=aside)
        except SpoolRefused as exc:
            return str(exc)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            return f"cannot move it to {self.path / why}: {_why(exc)}"
        if reason is None:
            return None
        temporary = f".{name}.reason.tmp"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=aside)
            fd = os.open(temporary, _NEW_FILE, 0o600, dir_fd=aside)
            try:
                os.write(fd, reason.encode("utf-8", "backslashreplace")[:MAX_ENTRY_BYTES] + b"\n")
            finally:
                os.close(fd)
            os.replace(temporary, f"{name}.reason", src_dir_fd=aside, dst_dir_fd=aside)
        except (OSError, ValueError):
            pass  # the reason is in the log line too
        return None

    def _aside(self, why: str) -> int:
        fd = self._asides.get(why)
        if fd is not None:
            return fd
        where = self.path / why
        try:
            os.mkdir(why, 0o700, dir_fd=self._fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise SpoolRefused(f"cannot create {where}: {_why(exc)}") from None
        try:
            fd = os.open(why, _FOLDER, dir_fd=self._fd)
        except OSError as exc:
            raise SpoolRefused(_open_problem(where, exc, dir_fd=self._fd, name=why)) from None
        problem = folder_problem(where, os.fstat(fd))
        if problem is not None:
            os.close(fd)
            raise SpoolRefused(problem)
        self._asides[why] = fd
        return fd

    def sweep_temporaries(self, now: float | None = None) -> None:
        """Remove the temporary files a crashed reporter left (older than an hour)."""
        cutoff = (time.time() if now is None else now) - STALE_TEMPORARY_SECONDS
        with contextlib.suppress(OSError):
            for name in os.listdir(self._fd):
                if not (name.startswith(".") and name.endswith(".tmp")):
                    continue
                with contextlib.suppress(OSError):
                    status = os.stat(name, dir_fd=self._fd, follow_symlinks=False)
                    if not stat.S_ISDIR(status.st_mode) and status.st_mtime < cutoff:
                        os.unlink(name, dir_fd=self._fd)

    @contextlib.contextmanager
    def lock(self) -> Iterator[bool]:
        """Hold the spool's flush lock if nobody else does (yields False when busy)."""
        import fcntl

        try:
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(".flush.lock", flags, 0o600, dir_fd=self._fd)
        except OSError:
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            yield True
        finally:
            os.close(fd)


def _open_problem(
    path: Path, exc: BaseException, *, dir_fd: int | None = None, name: str | None = None
) -> str:
    """A clear sentence for a folder that could not be opened without following links."""
    try:
        if dir_fd is not None and name is not None:
            status = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        else:
            status = os.lstat(path)
    except (OSError, ValueError):
        status = None
    if status is not None:
        problem = folder_problem(path, status)
        if problem is not None and not stat.S_ISDIR(status.st_mode):
            return problem
    if isinstance(exc, ValueError):
        return f"the spool folder {path!r} is not a valid path ({exc})"
    return f"cannot open {path}: {_why(exc)}"
