"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio_asyncio


@pytest.fixture
async def asyncio_loop() -> AsyncIterator[trio_asyncio.TrioEventLoop]:
    """An asyncio loop running inside the test's trio loop, as the supervisor process has one:
    asyncssh and grpclib run on it through ``trio_asyncio.aio_as_trio``."""
    async with trio_asyncio.open_loop() as loop:
        yield loop
