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
"""

from __future__ import annotations

import msgspec

__all__ = [
    "ActorCrashed",
    "ActorNotFound",
    "ActorStopped",
    "ActorSystemError",
    "AskTimeout",
    "ErrorInfo",
    "MailboxFull",
    "NameTaken",
    "RestartIntensityExceeded",
]


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

    def __init__(self, actor: str, capacity: int) -> None:
        super().__init__(f"mailbox of actor {actor!r} is full ({capacity} messages)")
        self.actor = actor
        self.capacity = capacity


class ActorStopped(ActorSystemError):
    """The actor is stopping or has ended: the message was refused or will never be answered."""

    def __init__(self, actor: str, detail: str = "is stopped") -> None:
        super().__init__(f"actor {actor!r} {detail}")
        self.actor = actor


class ActorCrashed(ActorSystemError):
    """The actor crashed before answering; ``__cause__`` holds its exception.

    The message may have been (partly) acted upon: treat it as "may have taken effect".
    """

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

    def __init__(self, actor: str, message_type: str, timeout: float) -> None:
        super().__init__(f"actor {actor!r} did not answer {message_type} within {timeout:g} s")
        self.actor = actor
        self.message_type = message_type
        self.timeout = timeout


class ActorNotFound(ActorSystemError):
    """No live actor or child answers to this name (or id)."""

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
