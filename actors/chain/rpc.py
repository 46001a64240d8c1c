"""JSON-RPC to an EVM node over HTTP (httpx) and WebSocket (trio-websocket), pure trio.

- :class:`HttpRpc`: one request per POST, or several in one JSON-RPC batch (:meth:`HttpRpc.batch`).
  Reads and transactions go this way.
- :class:`WsRpc` (opened with :func:`open_ws_rpc`): requests and ``eth_subscribe`` over one
  WebSocket; a reader task routes answers by id and notifications by subscription id. When the
  socket dies every waiting request and every :class:`Subscription` fails with our own errors, so
  the owner can rebuild the connection.

Errors (one flat hierarchy under :class:`~actors.chain.revert.ChainError`; httpx, trio-websocket
and JSON errors never escape), each with its :class:`~runtime.errors.Delivery`:

- :class:`RequestNotSent` (never sent): the request never left (no connection, the socket was
  already closed). Safe to retry.
- :class:`OutcomeUnknown` (may have taken effect): it was (maybe partly) sent and no answer came
  back (timeout, connection dropped, garbled reply): check before retrying a transaction.
- :class:`RpcError` (answered): the node answered with a JSON-RPC error (not a revert).
- :class:`~actors.chain.revert.ContractError`: the node answered that the call reverted.
- :class:`SubscriptionLost`: a subscription ended because its connection did.

The library's exceptions become these through one declared table per step, applied with
:func:`runtime.errors.map_exceptions` (the cause is kept as ``__cause__``): :data:`HTTP_ERRORS`
for a POST, :data:`JSON_ERRORS` for its body, :data:`WS_OPEN_ERRORS`, :data:`WS_SEND_ERRORS` and
:data:`WS_ANSWER_ERRORS` for the WebSocket, :data:`SUBSCRIPTION_ERRORS` for a subscription.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Final

import httpx
import msgspec
import trio
import trio_websocket

from actors.chain.revert import ChainError, decode_revert, revert_data
from runtime.actor import sole_exception
from runtime.errors import Delivery, ErrorTable, map_exceptions, mapped

__all__ = [
    "HTTP_ERRORS",
    "JSON_ERRORS",
    "SUBSCRIPTION_ERRORS",
    "WS_ANSWER_ERRORS",
    "WS_OPEN_ERRORS",
    "WS_SEND_ERRORS",
    "HttpRpc",
    "OutcomeUnknown",
    "RequestNotSent",
    "RpcError",
    "Subscription",
    "SubscriptionLost",
    "WsRpc",
    "open_ws_rpc",
]

DEFAULT_TIMEOUT = 10.0
MAX_WS_MESSAGE = 64 * 1024 * 1024
SUBSCRIPTION_BUFFER = 10_000

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


class RequestNotSent(ChainError):
    """The request never reached the node; retrying cannot duplicate anything."""

    delivery: ClassVar[Delivery] = Delivery.NEVER_SENT


class OutcomeUnknown(ChainError):
    """The request may have reached the node but no answer came back: it may have taken effect."""

    delivery: ClassVar[Delivery] = Delivery.MAY_HAVE_TAKEN_EFFECT


class RpcError(ChainError):
    """The node answered a JSON-RPC error (other than a revert)."""

    delivery: ClassVar[Delivery] = Delivery.ANSWERED

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: [{code}] {message}")
        self.method = method
        self.code = code
        self.message = message


class SubscriptionLost(ChainError):
    """The connection carrying a subscription closed; subscribe again on a new connection."""


# --- the library's exceptions as ours, one table per step (first match wins) -----------------

HTTP_ERRORS: Final[ErrorTable] = {
    httpx.ConnectError: RequestNotSent,  # no connection: nothing was sent
    httpx.ConnectTimeout: RequestNotSent,
    httpx.PoolTimeout: RequestNotSent,  # no free connection in our pool
    httpx.UnsupportedProtocol: RequestNotSent,  # refused by our side before sending
    httpx.LocalProtocolError: RequestNotSent,
    httpx.HTTPError: OutcomeUnknown,  # write/read errors and timeouts, remote protocol errors
}
"""One POST to the node."""

JSON_ERRORS: Final[ErrorTable] = {msgspec.DecodeError: OutcomeUnknown}
"""The body of a reply (HTTP 2xx/3xx) that should be JSON: the request was handled, or not."""

WS_OPEN_ERRORS: Final[ErrorTable] = {
    OSError: RequestNotSent,  # refused, unreachable, DNS
    trio_websocket.HandshakeError: RequestNotSent,
    trio.TooSlowError: RequestNotSent,  # connect timeout
    trio_websocket.ConnectionClosed: RequestNotSent,
}
"""Opening the WebSocket, before any request went over it."""

WS_SEND_ERRORS: Final[ErrorTable] = {trio_websocket.ConnectionClosed: RequestNotSent}
"""Sending one request: a closed socket sent nothing."""

WS_ANSWER_ERRORS: Final[ErrorTable] = {trio.EndOfChannel: OutcomeUnknown}
"""Waiting for the answer to a request sent: the socket closed under it."""

SUBSCRIPTION_ERRORS: Final[ErrorTable] = {
    trio.EndOfChannel: SubscriptionLost,
    trio.ClosedResourceError: SubscriptionLost,
}
"""Reading a subscription whose connection is gone."""


def _answer(method: str, reply: Any) -> Any:
    """The ``result`` of one JSON-RPC reply object, or our error for its ``error``."""
    if not isinstance(reply, dict):
        raise OutcomeUnknown(f"{method}: malformed reply {reply!r:.200}")
    error = reply.get("error")
    if error is None:
        return reply.get("result")
    if not isinstance(error, dict):
        raise RpcError(method, -32603, str(error))
    data = revert_data(error)
    if data is not None:
        raise decode_revert(data)
    code = error.get("code", 0)
    number = code if isinstance(code, int) and not isinstance(code, bool) else -32603
    raise RpcError(method, number, str(error.get("message", ""))[:2000])


def _body(ident: int, method: str, params: Sequence[Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "method": method, "params": list(params)}


class HttpRpc:
    """JSON-RPC over HTTP POST. ``client`` defaults to an :class:`httpx.AsyncClient` owned here
    (closed by :meth:`aclose`)."""

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, client: httpx.AsyncClient | None = None
    ) -> None:
        self.url = url
        self._owned = client is None
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            verify=url.startswith("https:"),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )
        self._ids = itertools.count(1)
        self.requests = 0

    def __repr__(self) -> str:
        return f"HttpRpc({self.url!r})"

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()

    async def _post(self, what: str, body: object) -> Any:
        self.requests += 1
        with map_exceptions(HTTP_ERRORS, what):
            response = await self._client.post(
                self.url, content=_json_encode(body), headers={"content-type": "application/json"}
            )
        if response.status_code >= 500:
            raise OutcomeUnknown(f"{what}: HTTP {response.status_code}")
        if response.status_code >= 400:  # the node (or a proxy) refused it: an answer
            try:
                return _json_decode(response.content)
            except msgspec.DecodeError as exc:
                raise RpcError(what, -response.status_code, response.text[:200]) from exc
        with map_exceptions(JSON_ERRORS, f"{what}: reply is not JSON"):
            return _json_decode(response.content)

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call; its ``result``."""
        reply = await self._post(method, _body(next(self._ids), method, params))
        return _answer(method, reply)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Several calls in one round trip; each entry is the result or the :class:`ChainError`
        of that call (a transport failure raises for the whole batch)."""
        if not calls:
            return []
        first = next(self._ids)
        self._ids = itertools.count(first + len(calls))
        bodies = [_body(first + i, m, p) for i, (m, p) in enumerate(calls)]
        replies = await self._post(f"batch of {len(calls)}", bodies)
        if not isinstance(replies, list):
            replies = [replies]
        by_id = {r.get("id"): r for r in replies if isinstance(r, dict)}
        results: list[Any] = []
        for i, (method, _) in enumerate(calls):
            try:
                results.append(_answer(method, by_id.get(first + i)))
            except ChainError as exc:
                results.append(exc)
        return results


class Subscription:
    """The notifications of one ``eth_subscribe``, in arrival order."""

    def __init__(self, ident: str, receive: trio.MemoryReceiveChannel[Any]) -> None:
        self.id = ident
        self._receive = receive

    async def receive(self) -> Any:
        """The next notification's ``result``; :class:`SubscriptionLost` once the connection
        is gone."""
        with map_exceptions(
            SUBSCRIPTION_ERRORS, f"subscription {self.id} ended with its connection"
        ):
            return await self._receive.receive()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        return await self.receive()


class WsRpc:
    """JSON-RPC and subscriptions over one open WebSocket. Use :func:`open_ws_rpc`."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, url: str) -> None:
        self.url = url
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, trio.MemorySendChannel[Any]] = {}
        self._subs: dict[str, trio.MemorySendChannel[Any]] = {}
        self._early: dict[str, list[Any]] = {}
        self.closed = False
        self.timeout = DEFAULT_TIMEOUT

    async def _reader(self) -> None:
        try:
            while True:
                text = await self._ws.get_message()
                try:
                    message = _json_decode(text)
                except msgspec.DecodeError:
                    continue
                self._route(message)
        except trio_websocket.ConnectionClosed:
            pass
        finally:
            self._close_all()

    def _route(self, message: Any) -> None:
        if isinstance(message, list):
            for item in message:
                self._route(item)
            return
        if not isinstance(message, dict):
            return
        if message.get("method") == "eth_subscription":
            params = message.get("params") or {}
            sid = str(params.get("subscription"))
            channel = self._subs.get(sid)
            if channel is None:  # a notification may beat the eth_subscribe answer
                self._early.setdefault(sid, []).append(params.get("result"))
                return
            try:
                channel.send_nowait(params.get("result"))
            except trio.WouldBlock:  # a consumer this far behind is dead: drop it
                channel.close()
                self._subs.pop(sid, None)
            except trio.BrokenResourceError:
                self._subs.pop(sid, None)
            return
        waiter = self._waiting.pop(message.get("id"), None)  # type: ignore[arg-type]
        if waiter is not None:
            waiter.send_nowait(message)

    def _close_all(self) -> None:
        self.closed = True
        for waiter in self._waiting.values():
            waiter.close()
        self._waiting.clear()
        for channel in self._subs.values():
            channel.close()
        self._subs.clear()

    async def request(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call over the socket; its ``result`` (:class:`OutcomeUnknown` after
        :attr:`timeout` seconds without an answer)."""
        timeout = self.timeout
        if self.closed:
            raise RequestNotSent(f"{method}: the WebSocket to {self.url} is closed")
        ident = next(self._ids)
        send, receive = trio.open_memory_channel[Any](1)
        self._waiting[ident] = send
        try:
            with map_exceptions(WS_SEND_ERRORS, f"{method}: the WebSocket to {self.url} closed"):
                await self._ws.send_message(_json_encode(_body(ident, method, params)).decode())
            with trio.move_on_after(timeout if math.isfinite(timeout) else math.inf):
                with map_exceptions(
                    WS_ANSWER_ERRORS, f"{method}: the WebSocket closed before the answer"
                ):
                    reply = await receive.receive()
                return _answer(method, reply)
            raise OutcomeUnknown(f"{method}: no answer within {timeout:g} s")
        finally:
            self._waiting.pop(ident, None)

    async def subscribe(self, *params: Any) -> Subscription:
        """``eth_subscribe(*params)``: e.g. ``subscribe("newHeads")`` or ``subscribe("logs",
        {"address": ..., "topics": [...]})``."""
        sid = str(await self.request("eth_subscribe", params))
        send, receive = trio.open_memory_channel[Any](SUBSCRIPTION_BUFFER)
        for early in self._early.pop(sid, []):
            send.send_nowait(early)
        if self.closed:
            send.close()
        else:
            self._subs[sid] = send
        return Subscription(sid, receive)

    async def aclose(self) -> None:
        """Close the socket (the reader then fails every waiter and subscription)."""
        with trio.CancelScope(shield=True), trio.move_on_after(1):
            await self._ws.aclose()
        self._close_all()


@asynccontextmanager
async def open_ws_rpc(
    url: str, *, connect_timeout: float = DEFAULT_TIMEOUT
) -> AsyncIterator[WsRpc]:
    """A :class:`WsRpc` on a fresh WebSocket to ``url``, closed when the block exits.

    Raises :class:`RequestNotSent` if the connection cannot be opened. An exception raised in the
    block comes out as itself (not wrapped in an exception group).
    """
    entered = False
    try:
        async with trio_websocket.open_websocket_url(
            url,
            max_message_size=MAX_WS_MESSAGE,
            message_queue_size=SUBSCRIPTION_BUFFER,
            connect_timeout=connect_timeout,
            disconnect_timeout=1,
        ) as ws:
            entered = True
            rpc = WsRpc(ws, url)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rpc._reader)
                try:
                    yield rpc
                finally:
                    rpc._close_all()
                    nursery.cancel_scope.cancel()
    except BaseException as exc:
        inner = sole_exception(exc)
        if not entered:
            ours = mapped(WS_OPEN_ERRORS, inner, f"cannot open a WebSocket to {url}")
            if ours is not None:
                raise ours from inner
        if inner is exc:
            raise
        raise inner from inner.__cause__  # out of its group, its own cause kept
