"""One declared error table per adapter: the runtime's ``map_exceptions`` and each adapter's rows.

Every row is checked the way the job machine is: a library exception in, our error (and the side
of "never sent / may have taken effect / answered" it falls on) out, with the original kept as
``__cause__``.
"""

from __future__ import annotations

import socket
import ssl

import asyncssh
import h2.exceptions
import httpx
import msgspec
import pytest
import trio
import trio_websocket
from grpclib.const import Status
from grpclib.exceptions import ProtocolError, StreamTerminatedError

from actors import sbatch
from actors.chain import rpc
from actors.chain.actor import ASK_ERRORS, ChainValueError
from actors.slurm import ssh
from actors.slurm.messages import (
    CommandFailed,
    CommandLost,
    SlurmUnavailable,
    SshUnavailable,
    UnexpectedOutput,
)
from runtime.errors import (
    ActorCrashed,
    ActorNotFound,
    ActorStopped,
    AskTimeout,
    Delivery,
    ErrorTable,
    MailboxFull,
    delivery_of,
    describe_error,
    map_exceptions,
    mapped,
)

NEVER = Delivery.NEVER_SENT
MAYBE = Delivery.MAY_HAVE_TAKEN_EFFECT
ANSWERED = Delivery.ANSWERED


# --- the runtime's helper -------------------------------------------------------------------


class Ours(Exception):
    pass


class Narrow(Exception):
    pass


TABLE: ErrorTable = {KeyError: Narrow, LookupError: Ours}


def test_the_first_matching_row_wins_and_the_cause_is_kept() -> None:
    original = KeyError("k")
    with pytest.raises(Narrow) as caught, map_exceptions(TABLE, "reading"):
        raise original
    assert caught.value.__cause__ is original
    assert str(caught.value) == "reading: KeyError: 'k'"
    with pytest.raises(Ours) as wider, map_exceptions(TABLE):
        raise IndexError("i")
    assert isinstance(wider.value.__cause__, IndexError) and str(wider.value) == "IndexError: i"


def test_an_exception_no_row_names_passes_through_unchanged() -> None:
    original = ValueError("v")
    with pytest.raises(ValueError) as caught, map_exceptions(TABLE, "reading"):
        raise original
    assert caught.value is original


def test_cancellation_is_never_mapped() -> None:
    everything: ErrorTable = {BaseException: Ours}
    with pytest.raises(KeyboardInterrupt), map_exceptions(everything):
        raise KeyboardInterrupt


def test_describe_error_leaves_out_what_is_empty() -> None:
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert describe_error(OSError("gone"), "connecting") == "connecting: OSError: gone"
    assert mapped(TABLE, ValueError("v")) is None


def test_the_runtimes_errors_say_where_a_message_stands() -> None:
    cause = RuntimeError("bug")
    assert delivery_of(MailboxFull("a", 1)) is NEVER
    assert delivery_of(ActorStopped("a")) is NEVER
    assert delivery_of(ActorNotFound("a")) is NEVER
    assert delivery_of(AskTimeout("a", "M", 1.0)) is MAYBE
    assert delivery_of(ActorCrashed("a", "M", cause)) is MAYBE
    assert delivery_of(cause) is None


def check(table: ErrorTable, library: BaseException, ours: type[Exception], side: Delivery) -> None:
    """One row: ``library`` becomes an ``ours`` on ``side``, from ``library``."""
    with pytest.raises(ours) as caught, map_exceptions(table, "step"):
        raise library
    assert type(caught.value) is ours, caught.value
    assert caught.value.__cause__ is library
    assert delivery_of(caught.value) is side
    assert str(caught.value).count(type(library).__name__) == 1


# --- the chain adapter ------------------------------------------------------------------------

REQUEST = httpx.Request("POST", "http://node")


@pytest.mark.parametrize(
    ("library", "ours", "side"),
    [
        (httpx.ConnectError("refused", request=REQUEST), rpc.RequestNotSent, NEVER),
        (httpx.ConnectTimeout("slow", request=REQUEST), rpc.RequestNotSent, NEVER),
        (httpx.PoolTimeout("busy", request=REQUEST), rpc.RequestNotSent, NEVER),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), rpc.RequestNotSent, NEVER),
        (httpx.LocalProtocolError("bad header"), rpc.RequestNotSent, NEVER),
        (httpx.ReadTimeout("slow", request=REQUEST), rpc.OutcomeUnknown, MAYBE),
        (httpx.WriteError("cut", request=REQUEST), rpc.OutcomeUnknown, MAYBE),
        (httpx.RemoteProtocolError("garbled", request=REQUEST), rpc.OutcomeUnknown, MAYBE),
    ],
)
def test_http_rows(library: Exception, ours: type[Exception], side: Delivery) -> None:
    check(rpc.HTTP_ERRORS, library, ours, side)


def test_json_and_websocket_rows() -> None:
    check(rpc.JSON_ERRORS, msgspec.DecodeError("not JSON"), rpc.OutcomeUnknown, MAYBE)
    for opening in (
        ConnectionRefusedError("refused"),
        trio_websocket.HandshakeError(),
        trio.TooSlowError(),
    ):
        check(rpc.WS_OPEN_ERRORS, opening, rpc.RequestNotSent, NEVER)
    closed = trio_websocket.ConnectionClosed(None)
    check(rpc.WS_SEND_ERRORS, closed, rpc.RequestNotSent, NEVER)
    check(rpc.WS_ANSWER_ERRORS, trio.EndOfChannel(), rpc.OutcomeUnknown, MAYBE)
    for ended in (trio.EndOfChannel(), trio.ClosedResourceError()):
        with pytest.raises(rpc.SubscriptionLost) as caught, map_exceptions(rpc.SUBSCRIPTION_ERRORS):
            raise ended
        assert caught.value.__cause__ is ended


def test_the_chain_actor_answers_a_malformed_value_with_its_own_error() -> None:
    check(
        ASK_ERRORS, ValueError("not a job id (0x + 64 hex digits): '0x12'"), ChainValueError, MAYBE
    )


async def test_http_rpc_raises_ours_from_the_transports_exception() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def garble(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>")

    def proxy_says_no(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, content=b"forbidden")

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(rpc.RequestNotSent, match="eth_chainId: ConnectError") as refused:
            await rpc.HttpRpc("http://node", client=client).request("eth_chainId")
        assert isinstance(refused.value.__cause__, httpx.ConnectError)
    async with httpx.AsyncClient(transport=httpx.MockTransport(garble)) as client:
        with pytest.raises(rpc.OutcomeUnknown, match="not JSON") as garbled:
            await rpc.HttpRpc("http://node", client=client).request("eth_chainId")
        assert isinstance(garbled.value.__cause__, msgspec.DecodeError)
    async with httpx.AsyncClient(transport=httpx.MockTransport(proxy_says_no)) as client:
        with pytest.raises(rpc.RpcError) as forbidden:
            await rpc.HttpRpc("http://node", client=client).request("eth_chainId")
        assert forbidden.value.code == -403 and delivery_of(forbidden.value) is ANSWERED


async def test_a_websocket_that_cannot_be_opened_was_never_sent_and_keeps_its_cause() -> None:
    with socket.socket() as sock:  # a local port nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(rpc.RequestNotSent, match="cannot open a WebSocket") as caught:
        async with rpc.open_ws_rpc(url, connect_timeout=5):
            pass
    assert isinstance(caught.value.__cause__, trio_websocket.HandshakeError | OSError)


# --- the SSH adapter ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("library", "reason"),
    [
        (asyncssh.HostKeyNotVerifiable("unknown key"), "host-key"),
        (asyncssh.PermissionDenied("no"), "auth"),
        (TimeoutError(), "timeout"),
        (asyncssh.ConnectionLost("reset"), "connect"),
        (ConnectionRefusedError("refused"), "connect"),
        (ValueError("bad host"), "connect"),
    ],
)
def test_connect_rows_are_never_sent_with_their_reason(library: Exception, reason: str) -> None:
    check(ssh.connect_errors("alice"), library, SshUnavailable, NEVER)
    error = mapped(ssh.connect_errors("alice"), library)
    assert isinstance(error, SshUnavailable)
    assert (error.user, error.reason) == ("alice", reason)


def test_command_rows_split_a_refused_channel_from_a_lost_command() -> None:
    refused = asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "MaxSessions")
    check(ssh.start_errors("bob"), refused, SshUnavailable, NEVER)
    channel = mapped(ssh.start_errors("bob"), refused)
    assert isinstance(channel, SshUnavailable) and channel.reason == "channel"
    for broken in (asyncssh.ConnectionLost("reset"), BrokenPipeError("pipe")):
        check(ssh.start_errors("bob"), broken, CommandLost, MAYBE)
        check(ssh.run_errors("bob"), broken, CommandLost, MAYBE)
    # Once the command runs, even a refused channel (it cannot happen) is never "not started".
    check(ssh.run_errors("bob"), refused, CommandLost, MAYBE)


def test_the_slurm_errors_carry_their_side() -> None:
    assert delivery_of(SlurmUnavailable("down")) is NEVER
    assert delivery_of(SshUnavailable("u", "auth", "no")) is NEVER
    assert delivery_of(CommandLost("u", "cut")) is MAYBE
    assert delivery_of(CommandFailed("squeue", 1, "error: no")) is ANSWERED
    assert delivery_of(UnexpectedOutput("?")) is MAYBE


# --- the sbatch client --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "library",
    [
        ConnectionRefusedError("refused"),
        TimeoutError(),
        ssl.SSLError("handshake cut"),
        EOFError(),
        ProtocolError("bad frame"),
        StreamTerminatedError("reset"),
        h2.exceptions.ProtocolError("h2"),
    ],
)
def test_transport_rows_are_retried(library: Exception) -> None:
    retry = mapped(sbatch.TRANSPORT_ERRORS, library, "sbatch service s:1")
    assert retry is not None and type(retry).__name__ == "_Unreached"
    assert str(retry).startswith("sbatch service s:1: ")


def test_an_untrusted_certificate_is_not_retried() -> None:
    untrusted = ssl.SSLCertVerificationError("certificate verify failed")
    check(sbatch.TRANSPORT_ERRORS, untrusted, sbatch.SbatchUntrusted, MAYBE)
    error = mapped(sbatch.TRANSPORT_ERRORS, untrusted)
    assert isinstance(error, sbatch.SbatchUnavailable) and "not trusted" in str(error)


@pytest.mark.parametrize(
    ("status", "answer", "ours", "side"),
    [
        (Status.UNAVAILABLE, sbatch.Answer.RETRY, None, None),
        (Status.INTERNAL, sbatch.Answer.RETRY, None, None),
        (Status.DEADLINE_EXCEEDED, sbatch.Answer.RETRY, None, None),
        (Status.NOT_FOUND, sbatch.Answer.NOT_FOUND, sbatch.ScriptNotFound, ANSWERED),
        (Status.UNAUTHENTICATED, sbatch.Answer.DENIED, sbatch.ScriptAccessDenied, ANSWERED),
        (Status.PERMISSION_DENIED, sbatch.Answer.DENIED, sbatch.ScriptAccessDenied, ANSWERED),
        (Status.INVALID_ARGUMENT, sbatch.Answer.REFUSED, sbatch.SbatchRefused, ANSWERED),
        (Status.FAILED_PRECONDITION, sbatch.Answer.REFUSED, sbatch.SbatchRefused, ANSWERED),
    ],
)
def test_status_rows(
    status: Status, answer: sbatch.Answer, ours: type[Exception] | None, side: Delivery | None
) -> None:
    assert sbatch.classify(status) is answer
    make, says = sbatch.ANSWER_ERRORS[answer]
    error = make(says.format(what="job 0x01"))
    if ours is None:
        assert type(error).__name__ == "_Retry"
    else:
        assert type(error) is ours and delivery_of(error) is side


def test_a_request_that_cannot_be_encoded_is_refused_without_being_sent() -> None:
    surrogate = "\ud800"
    try:
        surrogate.encode()
    except UnicodeEncodeError as unencodable:
        check(sbatch.REQUEST_ERRORS, unencodable, sbatch.SbatchRequestInvalid, NEVER)
    assert issubclass(sbatch.SbatchRequestInvalid, sbatch.SbatchRefused)
