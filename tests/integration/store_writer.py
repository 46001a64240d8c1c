"""A checkpoint-store writer that test_store_kill9.py kills with SIGKILL at random moments.

Usage: ``python store_writer.py <state folder> <round>``. Three trio tasks write in a loop; after a
write call *returns*, the task prints one line naming it, so every printed line is a promise that
the write is durable:

    put <key>     a record in namespace "entries"
    offer <key>   an accepted offer into inbox "box"
    ack <key>     inbox "box" item acked, in the same transaction as a record in namespace "acks"

The writer stops by itself after a while, in case nobody kills it.
"""

from __future__ import annotations

import sys

import msgspec
import trio

from runtime.store import Store, open_store


class Entry(msgspec.Struct, frozen=True):
    round: int
    lane: int
    n: int
    note: str


def say(line: str) -> None:
    print(line, flush=True)


async def lane(store: Store, round_: int, lane_: int) -> None:
    n = 0
    while True:
        key = f"{round_:02d}-{lane_}-{n:06d}"
        entry = Entry(round_, lane_, n, "x" * (n % 50))
        await store.put("entries", key, entry)
        say(f"put {key}")
        if n % 3 == 0 and await store.offer("box", key, entry):
            say(f"offer {key}")
        if n % 3 == 1:
            # Work through the oldest pending items (maybe from earlier, killed rounds).
            for old_key, old in await store.pending("box", Entry, limit=2):
                async with store.transaction() as tx:
                    tx.ack("box", old_key)
                    tx.put("acks", old_key, old)
                say(f"ack {old_key}")
        n += 1


async def main(folder: str, round_: int) -> None:
    async with open_store(folder) as store:
        say("open")
        with trio.move_on_after(20):
            async with trio.open_nursery() as nursery:
                for lane_ in range(3):
                    nursery.start_soon(lane, store, round_, lane_)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))
