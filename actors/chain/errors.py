"""The root of the chain adapter's errors, and the error for values it cannot encode or decode.

Every module of :mod:`actors.chain` raises only :class:`ChainError` and its subclasses (the
transport's in :mod:`actors.chain.rpc`, the contract's refusal in :mod:`actors.chain.revert`).
They live here, below every other chain module, so that the ABI codec (:mod:`actors.chain.abi`)
can raise :class:`ChainValueError` for an answer it cannot decode without importing the modules
that import it.
"""

from __future__ import annotations

from typing import ClassVar

from runtime.errors import Delivery

__all__ = ["ChainError", "ChainValueError"]


class ChainError(Exception):
    """Base of every error the chain adapter raises (no third-party exception escapes it)."""


class ChainValueError(ChainError):
    """A value the chain adapter cannot encode into a request (a job id that is not 32 bytes, an
    address that is not 20) or decode from an answer (return data or a log the ABI does not
    describe, a JSON value of the wrong type, a job status the grid does not know). A malformed
    value in the ask is found before anything is sent; a decoding failure may follow a
    transaction that went through, hence the cautious delivery."""

    delivery: ClassVar[Delivery] = Delivery.MAY_HAVE_TAKEN_EFFECT
