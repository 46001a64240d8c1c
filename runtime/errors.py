"""The actor runtime's exceptions: one small, flat hierarchy rooted at :class:`ActorSystemError`.

Callers catch ``ActorSystemError`` to handle "the actor system said no" in one place, or one of
the leaves when they care which way it said no:

- :class:`MailboxFull`: ``tell_nowait`` found the mailbox at capacity (the message was not queued).
- :class:`ActorStopped`: the actor's mailbox is closed (it is stopping or has ended) or it ended
  before answering an ``ask``. The message was not handled.
- :class:`ActorCrashed`: the actor crashed while handling this ``ask`` (or before reaching it).
  The message *may have taken effect*; ``__cause__`` is the actor's own exception.
- :class:`AskTimeout`: no reply within the deadline. The message may still be handled later.
- :class:`ActorNotFound`: no live actor (or supervised child) answers to that name.
- :class:`NameTaken`: a name or child id is already in use.
- :class:`RestartIntensityExceeded`: a supervisor saw more restarts than its intensity allows,
  stopped its children and failed itself; ``last_error`` is the last child's exception.

:class:`ErrorInfo` is the plain-data form of an exception (type name and message) kept by the
registry and statistics, so no live exception object (and its traceback) is held for long.

Where a failed request stands (urllib3's distinction between "the request never left" and "it may
have taken effect") is :class:`Delivery`, a class attribute ``delivery`` of each error that answers
a request: the runtime's own (``MailboxFull``, ``ActorStopped`` and ``ActorNotFound``: never
sent; ``AskTimeout`` and ``ActorCrashed``: may have taken effect) and the adapters' (the chain's
``RequestNotSent`` / ``OutcomeUnknown``, SSH's ``SshUnavailable`` / ``CommandLost``, ...).
:func:`delivery_of` reads it.

Adapters translate a library's exceptions into theirs at one place each, with
:func:`map_exceptions` (httpcore's model): a declared :data:`ErrorTable` from the library's
exception classes to constructors of our errors, first match wins, and ours is raised ``from`` the
original, so the cause is never lost::

    HTTP_ERRORS: ErrorTable = {httpx.ConnectError: RequestNotSent, httpx.HTTPError: OutcomeUnknown}

    with map_exceptions(HTTP_ERRORS, "eth_call"):
        response = await client.post(url, content=body)

:func:`mapped` is the same lookup as a pure function (what a table makes of one exception), for
tests that check a table row by row.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator, Mapping
from typing import ClassVar, TypeAlias

import msgspec

__all__ = [
    "ActorCrashed",
    "ActorNotFound",
    "ActorStopped",
    "ActorSystemError",
    "AskTimeout",
    "Delivery",
    "ErrorInfo",
    "ErrorTable",
    "MailboxFull",
    "NameTaken",
    "RestartIntensityExceeded",
    "delivery_of",
    "describe_error",
    "map_exceptions",
    "mapped",
]


class Delivery(enum.Enum):
    """Where a failed request stands: did it reach the other side, could it have acted on it?"""

    NEVER_SENT = "never sent"
    """Nothing reached the other side (no connection, a closed mailbox, a request that could not
    even be built): safe to retry, nothing can happen twice."""
    MAY_HAVE_TAKEN_EFFECT = "may have taken effect"
    """It was (maybe partly) sent and no answer came back (a timeout, a dropped connection, a
    crash while handling it): look before doing it again."""
    ANSWERED = "answered"
    """The other side answered with a refusal: asking the same again gets the same answer."""


def delivery_of(error: BaseException) -> Delivery | None:
    """The :class:`Delivery` an error declares (its ``delivery`` attribute), None if it has none."""
    delivery = getattr(error, "delivery", None)
    return delivery if isinstance(delivery, Delivery) else None


ErrorTable: TypeAlias = Mapping[type[BaseException], Callable[[str], Exception]]
"""A library's exception classes, each with the constructor of our error it becomes (called with
the message :func:`describe_error` gives). Rows are tried in order: put subclasses first."""


def describe_error(error: BaseException, context: str = "") -> str:
    """``"<context>: <type>: <message>"``, leaving out what is empty (the message of our error
    made from ``error``)."""
    parts = (context, type(error).__name__, str(error))
    return ": ".join(part for part in parts if part)


def mapped(table: ErrorTable, error: BaseException, context: str = "") -> Exception | None:
    """Our error for ``error`` by the first row of ``table`` it matches, or None if none does."""
    for library, ours in table.items():
        if isinstance(error, library):
            return ours(describe_error(error, context))
    return None


@contextlib.contextmanager
def map_exceptions(table: ErrorTable, context: str = "") -> Iterator[None]:
    """Raise our error for a library exception escaping the block, ``from`` the original.

    ``context`` says what was being done (it starts the message). An exception that no row of
    ``table`` names passes through unchanged, and so does every ``BaseException`` that is not an
    ``Exception`` (trio's ``Cancelled``, ``KeyboardInterrupt``).
    """
    try:
        yield
    except Exception as error:
        ours = mapped(table, error, context)
        if ours is None:
            raise
        raise ours from error


class ErrorInfo(msgspec.Struct, frozen=True):
    """An exception as plain data: its type name and its message."""

    type: str
    message: str

    @classmethod
    def of(cls, error: BaseException) -> ErrorInfo:
        """Describe ``error`` (its class name and ``str()``)."""
        return cls(type=type(error).__name__, message=str(error))


class ActorSystemError(Exception):
    """Base class of every error raised by the actor runtime."""


class MailboxFull(ActorSystemError):
    """``tell_nowait`` found the mailbox at capacity; the message was not queued."""

    delivery: ClassVar[Delivery] = Delivery.NEVER_SENT

    def __init__(self, actor: str, capacity: int) -> None:
        super().__init__(f"mailbox of actor {actor!r} is full ({capacity} messages)")
        self.actor = actor
        self.capacity = capacity


class ActorStopped(ActorSystemError):
    """The actor is stopping or has ended: the message was refused or will never be answered."""

    delivery: ClassVar[Delivery] = Delivery.NEVER_SENT

    def __init__(self, actor: str, detail: str = "is stopped") -> None:
        super().__init__(f"actor {actor!r} {detail}")
        self.actor = actor


class ActorCrashed(ActorSystemError):
    """The actor crashed before answering; ``__cause__`` holds its exception.

    The message may have been (partly) acted upon: treat it as "may have taken effect".
    """

    delivery: ClassVar[Delivery] = Delivery.MAY_HAVE_TAKEN_EFFECT

    def __init__(self, actor: str, message_type: str, cause: BaseException) -> None:
        super().__init__(
            f"actor {actor!r} crashed before answering {message_type}: "
            f"{type(cause).__name__}: {cause}"
        )
        self.actor = actor
        self.message_type = message_type
        self.__cause__ = cause


class AskTimeout(ActorSystemError):
    """No reply within the ask's deadline. The message may still be handled later."""

    delivery: ClassVar[Delivery] = Delivery.MAY_HAVE_TAKEN_EFFECT

    def __init__(self, actor: str, message_type: str, timeout: float) -> None:
        super().__init__(f"actor {actor!r} did not answer {message_type} within {timeout:g} s")
        self.actor = actor
        self.message_type = message_type
        self.timeout = timeout


class ActorNotFound(ActorSystemError):
    """No live actor or child answers to this name (or id)."""

    delivery: ClassVar[Delivery] = Delivery.NEVER_SENT

    def __init__(self, name: str, detail: str = "is not registered") -> None:
        super().__init__(f"{name!r} {detail}")
        self.name = name


class NameTaken(ActorSystemError):
    """A registry name or a supervisor's child id is already in use."""

    def __init__(self, name: str, where: str = "the registry") -> None:
        super().__init__(f"{name!r} is already in use in {where}")
        self.name = name


class RestartIntensityExceeded(ActorSystemError):
    """A supervisor restarted its children too often; it stopped them and failed itself.

    ``last_error`` (also ``__cause__``) is the exception of the child whose exit tipped the
    balance, or None when that child ended normally (a permanent child that returned).
    """

    def __init__(
        self,
        supervisor: str,
        child: str,
        max_restarts: int,
        period_seconds: float,
        last_error: BaseException | None,
    ) -> None:
        cause = f": {type(last_error).__name__}: {last_error}" if last_error is not None else ""
        super().__init__(
            f"supervisor {supervisor!r} exceeded {max_restarts} restarts in "
            f"{period_seconds:g} s (last exit: child {child!r}{cause})"
        )
        self.supervisor = supervisor
        self.child = child
        self.last_error = last_error
        self.__cause__ = last_error
