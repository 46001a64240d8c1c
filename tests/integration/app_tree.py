"""A tiny daemon for tests/integration/test_app.py: a tree run by ``runtime.app.run_tree``.

Usage: ``python tests/integration/app_tree.py STATE_DIR EVENTS_FILE [--hang]``. Each actor appends
``started NAME`` / ``stopping NAME`` lines to EVENTS_FILE; with ``--hang`` the last actor's
``stopping()`` never returns, so only a second signal (or the deadline) ends the process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from runtime.actor import Actor
from runtime.app import run_tree
from runtime.logs import configure_logging
from runtime.supervisor import ChildSpec, Supervisor


class Recorder(Actor[object, None]):
    def __init__(self, name: str, events: Path, hang: bool = False) -> None:
        super().__init__(name)
        self._events = events
        self._hang = hang

    def _note(self, what: str) -> None:
        with self._events.open("a") as out:
            out.write(f"{what} {self.name}\n")

    async def started(self) -> None:
        self._note("started")

    async def stopping(self) -> None:
        self._note("stopping")
        if self._hang:
            await trio.sleep_forever()

    async def handle(self, message: object) -> None:
        return None


def main() -> int:
    state, events = Path(sys.argv[1]), Path(sys.argv[2])
    hang = "--hang" in sys.argv
    configure_logging("info")
    names = ["first", "second", "third"]
    root = Supervisor(
        "root",
        [
            ChildSpec(name, lambda n=name: Recorder(n, events, hang and n == "third"), shutdown=60)
            for name in names
        ],
    )
    code: int = trio.run(lambda: run_tree(root, state_dir=state, stop_deadline=60.0))
    return code


if __name__ == "__main__":
    sys.exit(main())
