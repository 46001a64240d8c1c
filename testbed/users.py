"""UNIX accounts on the SLURM side: one per customer, named after the customer's address.

The grid names a customer's UNIX user after the lowercase ``0x`` address (42 characters).
``useradd`` refuses names over 32 characters, so the entries are appended to ``/etc/passwd``,
``/etc/shadow`` (password field ``*``: no password, but *not* locked, so sshd with ``UsePAM no``
accepts key logins), ``/etc/group`` and ``/etc/gshadow`` directly, and the home folder is made by
hand.  Adding is idempotent; the accounts stay after ``testbed down`` (they are cheap and keep the
jobs' output).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec

from testbed.processes import TestbedError

FIRST_UID = 20000
"""Customer uids and gids are allocated upwards from here, skipping any already taken."""


class UnixUser(msgspec.Struct, frozen=True):
    name: str
    uid: int
    gid: int
    home: Path


def lookup(name: str, *, etc: Path = Path("/etc")) -> UnixUser | None:
    """The passwd entry of ``name``, or None."""
    for line in (etc / "passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == name:
            return UnixUser(name=name, uid=int(fields[2]), gid=int(fields[3]), home=Path(fields[5]))
    return None


def _taken_ids(path: Path) -> set[int]:
    ids: set[int] = set()
    for line in path.read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            ids.add(int(fields[2]))
    return ids


def _free_id(etc: Path) -> int:
    taken = _taken_ids(etc / "passwd") | _taken_ids(etc / "group")
    candidate = FIRST_UID
    while candidate in taken:
        candidate += 1
    return candidate


def _append(path: Path, line: str) -> None:
    if not path.exists():
        return
    text = path.read_text()
    if text and not text.endswith("\n"):
        line = "\n" + line
    with path.open("a") as f:
        f.write(line + "\n")


def ensure_user(name: str, *, etc: Path = Path("/etc"), homes: Path = Path("/home")) -> UnixUser:
    """Create the account ``name`` (any length) with its own group and home, unless it exists."""
    if ":" in name or "/" in name or "\n" in name or not name:
        raise TestbedError(f"invalid UNIX user name {name!r}")
    found = lookup(name, etc=etc)
    if found is None:
        ident = _free_id(etc)
        home = homes / name
        days = int(time.time() // 86400)
        _append(etc / "group", f"{name}:x:{ident}:")
        _append(etc / "gshadow", f"{name}:!::")
        _append(etc / "passwd", f"{name}:x:{ident}:{ident}::{home}:/bin/bash")
        _append(etc / "shadow", f"{name}:*:{days}:0:99999:7:::")
        found = UnixUser(name=name, uid=ident, gid=ident, home=home)
    if not found.home.is_dir():
        found.home.mkdir(parents=True, mode=0o700)
        os.chown(found.home, found.uid, found.gid)
    return found


def authorize_key(user: UnixUser, public_key: str) -> None:
    """Make sure ``public_key`` (one authorized_keys line) is in the user's authorized_keys, with
    the ownership and modes sshd's StrictModes demands."""
    ssh_dir = user.home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    present = keys.read_text().splitlines() if keys.exists() else []
    if public_key.strip() not in (line.strip() for line in present):
        with keys.open("a") as f:
            f.write(public_key.strip() + "\n")
    for path, mode in ((ssh_dir, 0o700), (keys, 0o600)):
        os.chown(path, user.uid, user.gid)
        path.chmod(mode)
