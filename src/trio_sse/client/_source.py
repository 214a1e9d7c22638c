"""The EventSource model on httpx or httpx2: connect, read, reconnect with ``Last-Event-ID``.

References are to the HTML Living Standard, section 9.2 "Server-sent events": 9.2.3 "Processing
model" (status and content type checks, "reestablish the connection", "fail the connection")
and 9.2.4 "The Last-Event-ID header".

Nothing here spawns a task: the body is read in the iterating task, one chunk per
``__anext__`` that needs one, so cancellation and errors reach the caller directly and the
``async with`` block owns every resource (the current response and its connection).
"""

from __future__ import annotations

import collections
import http
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.lowlevel

from .._decoder import EventDecoder
from .._events import ServerSentEvent
from ._backoff import check_policy, reconnect_delay
from ._errors import SSEConnectionError, SSEContentTypeError, SSEResponseError, SSEStatusError
from ._http import library_of

if TYPE_CHECKING:
    from ._http import URL, AsyncClient, Response

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_BACKOFF_FACTOR",
    "DEFAULT_JITTER",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_BACKOFF",
    "EventSource",
    "State",
    "connect",
]

logger = logging.getLogger("trio_sse.client")

DEFAULT_BACKOFF = 3.0
"""Seconds to wait before reconnecting while the server has sent no ``retry:`` (as Chromium)."""
DEFAULT_MAX_BACKOFF = 30.0
"""Cap, in seconds, on the growing wait between failed attempts (before jitter)."""
DEFAULT_BACKOFF_FACTOR = 2.0
"""Growth of the wait per further consecutive failed attempt."""
DEFAULT_JITTER = 0.25
"""Up to this fraction of the wait is added at random (never subtracted)."""
DEFAULT_MAX_ATTEMPTS = 10
"""Consecutive failed attempts after which the client gives up (``None``: never)."""

# Closing a response is bounded: a peer that never acknowledges must not hold up a cancelled
# task for long.
CLOSE_TIMEOUT = 5.0
# Bound on the chunks read while unwinding httpx's body iterator (see _drop_connection).
_DRAIN_LIMIT = 64

State = Literal["connecting", "open", "closed"]

# Which errors of httpx (or httpx2) mean a network error: see _http.HTTPLibrary.

# Keyword arguments that httpx takes in ``AsyncClient.send``; all others go to
# ``AsyncClient.build_request`` (params, json, content, data, files, cookies, timeout, ...).
_SEND_KWARGS = ("auth", "follow_redirects")


class _RetryableStatus(Exception):
    def __init__(self, error: SSEStatusError) -> None:
        super().__init__(str(error))
        self.error = error


def _check_last_event_id(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"last_event_id must be a str, got {type(value).__name__}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"last_event_id must not contain CR, LF or NUL, got {value!r}")
    return value


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "the server ended the stream without sending anything"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class EventSource:
    """One event stream, reconnected as needed: what :func:`connect` returns.

    Use it as ``async with connect(...) as source:`` and iterate with ``async for``; do not
    instantiate it yourself. Entering connects (retrying as configured); iterating yields
    each :class:`~trio_sse.ServerSentEvent` as it arrives and reconnects when the connection
    ends; leaving closes the current response and its connection, even when cancelled.

    Read-only state:

    * ``state``: ``"connecting"``, ``"open"`` or ``"closed"`` (the three values of
      ``EventSource.readyState``);
    * ``last_event_id``: the last event ID string (``""`` until an ``id`` was seen), sent as
      ``Last-Event-ID`` when reconnecting;
    * ``retry``: the server's latest ``retry:`` value in milliseconds, or ``None``;
    * ``connections``: streams opened so far (a 200 response with ``text/event-stream``);
      ``attempts``: requests sent so far; ``failures``: consecutive failed attempts now;
    * ``response``: the current ``httpx.Response`` (or ``httpx2.Response``), or ``None`` between
      connections; ``url``: the URL as given.
    """

    def __init__(
        self,
        client: AsyncClient,
        url: URL | str,
        *,
        method: str,
        headers: Mapping[str, str] | None,
        reconnect: bool,
        last_event_id: str | None,
        max_attempts: int | None,
        backoff: float,
        max_backoff: float,
        backoff_factor: float,
        jitter: float,
        retry_statuses: Collection[int],
        request_kwargs: dict[str, Any],
    ) -> None:
        self._http = library_of(client)  # httpx or httpx2; TypeError for anything else
        httpx = self._http.module
        (
            self._max_attempts,
            self._backoff,
            self._max_backoff,
            self._backoff_factor,
            self._jitter,
        ) = check_policy(
            max_attempts=max_attempts,
            backoff=backoff,
            max_backoff=max_backoff,
            backoff_factor=backoff_factor,
            jitter=jitter,
        )
        self._client: Any = client  # one of two libraries with the same API: checked above
        self.url = url
        self._method = method
        self._reconnect = bool(reconnect)
        self._retry_statuses = frozenset(retry_statuses)
        if 200 in self._retry_statuses or 204 in self._retry_statuses:
            raise ValueError("retry_statuses cannot contain 200 or 204")
        # What the browser sends (Chromium and Firefox send these two on every request);
        # the caller's headers win, except Last-Event-ID, which is this source's state.
        self._headers = httpx.Headers({"Accept": "text/event-stream", "Cache-Control": "no-cache"})
        given = httpx.Headers(headers or {})
        if last_event_id is None and "last-event-id" in given:
            last_event_id = given["last-event-id"]
        if "last-event-id" in given:
            del given["last-event-id"]
        self._headers.update(given)
        kwargs = dict(request_kwargs)
        self._send_kwargs = {name: kwargs.pop(name) for name in _SEND_KWARGS if name in kwargs}
        # Like a browser's EventSource, follow redirects (the reconnection still goes to the
        # original URL, as the spec's "reestablish the connection" reuses the request).
        self._send_kwargs.setdefault("follow_redirects", True)
        if "timeout" not in kwargs:
            # An event stream may be quiet for as long as the server likes: no read timeout
            # unless the caller sets one. Connecting, writing and the pool keep the client's.
            timeout = client.timeout
            kwargs["timeout"] = httpx.Timeout(
                None, connect=timeout.connect, write=timeout.write, pool=timeout.pool
            )
        self._request_kwargs = kwargs
        # One decoder for the whole source: the last event ID and the reconnection time
        # persist across connections (9.2.6); close() is called at the end of each one.
        self._decoder = EventDecoder()
        if last_event_id is not None and _check_last_event_id(last_event_id):
            # The decoder's public API sets its last event ID from a stream: an ``id`` field
            # then a dispatch (no data, so no event), then close() to start a fresh stream.
            self._decoder.feed(f"id: {last_event_id}\n\n".encode())
            self._decoder.close()
        self._pending: collections.deque[ServerSentEvent] = collections.deque()
        self._state: State = "connecting"
        self._entered = False
        self._iterating = False
        self._response: Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._chunks_started = False
        self._chunks_done = False
        self._received = False
        self._connections = 0
        self._attempts = 0
        self._failures = 0

    # -- state ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def last_event_id(self) -> str:
        return self._decoder.last_event_id

    @property
    def retry(self) -> int | None:
        return self._decoder.retry

    @property
    def connections(self) -> int:
        return self._connections

    @property
    def attempts(self) -> int:
        return self._attempts

    @property
    def failures(self) -> int:
        return self._failures

    @property
    def response(self) -> Response | None:
        return self._response

    def __repr__(self) -> str:
        return (
            f"<EventSource {self.url!s} state={self._state} connections={self._connections}"
            f" last_event_id={self.last_event_id!r}>"
        )

    # -- lifetime ------------------------------------------------------------------------

    async def __aenter__(self) -> EventSource:
        """Connect (a checkpoint). Returns once a stream is open, or the server answered 204.

        Network errors are retried as configured; a status other than 200/204 or a wrong
        content type raises at once (:class:`SSEStatusError`, :class:`SSEContentTypeError`).
        """
        if self._entered:
            raise RuntimeError("this EventSource was already used; call connect() again")
        self._entered = True
        try:
            await self._establish(first=True)
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the current response and stop: iteration ends. Idempotent.

        Closing is shielded from cancellation (bounded by a few seconds), so a cancelled task
        still releases its connection. Leaving the ``async with`` block calls it.
        """
        self._state = "closed"
        self._pending.clear()
        await self._drop_connection()

    # -- iteration -----------------------------------------------------------------------

    def __aiter__(self) -> EventSource:
        return self

    async def __anext__(self) -> ServerSentEvent:
        """The next event: a checkpoint; waits for the server, reconnecting as needed.

        Raises ``StopAsyncIteration`` after a clean end of stream with ``reconnect=False``,
        after a 204 response, or once closed; :class:`SSEConnectionError` when giving up.
        """
        if not self._entered:
            raise RuntimeError("enter the source first: `async with connect(...) as source:`")
        if self._iterating:
            raise RuntimeError("another task is already iterating over this EventSource")
        self._iterating = True
        try:
            await anyio.lowlevel.checkpoint()
            while not self._pending:
                if self._state == "closed":
                    raise StopAsyncIteration
                if self._response is None:
                    await self._establish(first=False)
                else:
                    await self._read_chunk()
            return self._pending.popleft()
        finally:
            self._iterating = False

    # -- internals -----------------------------------------------------------------------

    def _next_delay(self) -> float:
        retry = self._decoder.retry
        base = self._backoff if retry is None else retry / 1000
        return reconnect_delay(
            self._failures,
            base=base,
            factor=self._backoff_factor,
            cap=self._max_backoff,
            jitter=self._jitter,
        )

    def _fail(self, cause: BaseException | None) -> None:
        """Count a failed attempt; raise :class:`SSEConnectionError` when it is one too many."""
        self._failures += 1
        if not self._reconnect:
            self._state = "closed"
            raise SSEConnectionError(
                f"could not connect to {self.url}: {_describe(cause)}", attempts=self._failures
            ) from cause
        if self._max_attempts is not None and self._failures >= self._max_attempts:
            self._state = "closed"
            raise SSEConnectionError(
                f"gave up on {self.url} after {self._failures} consecutive failed attempts;"
                f" the last one: {_describe(cause)}",
                attempts=self._failures,
            ) from cause
        logger.warning(
            "attempt %d to connect to %s failed: %s", self._failures, self.url, _describe(cause)
        )

    async def _establish(self, *, first: bool) -> None:
        # 9.2.3 "reestablish the connection": wait the reconnection time (plus backoff for
        # repeated failures), then send the request again with Last-Event-ID.
        wait = not first
        while True:
            self._state = "connecting"
            if wait:
                delay = self._next_delay()
                logger.info("reconnecting to %s in %.3f s", self.url, delay)
                await anyio.sleep(delay)
            wait = True
            try:
                await self._open()
            except _RetryableStatus as retryable:
                if not self._reconnect:
                    self._state = "closed"
                    raise retryable.error from None
                self._fail(retryable.error)
            except self._http.network_errors as error:
                self._fail(error)
            except SSEResponseError:
                # 9.2.3 "fail the connection": readyState CLOSED, no reconnection.
                self._state = "closed"
                raise
            else:
                return

    async def _open(self) -> None:
        headers = list(self._headers.raw)
        last_event_id = self._decoder.last_event_id
        if last_event_id:
            # 9.2.4: the header's value is the last event ID string, encoded as UTF-8 (as raw
            # bytes: httpx would encode a str header as ASCII). A server decodes it back with
            # value.encode("latin-1").decode("utf-8").
            headers.append((b"Last-Event-ID", last_event_id.encode()))
        request = self._client.build_request(
            self._method, self.url, headers=headers, **self._request_kwargs
        )
        self._attempts += 1
        response = await self._client.send(request, stream=True, **self._send_kwargs)
        try:
            is_stream = _check_response(response, self._method, self._retry_statuses)
        except BaseException:
            await _close_response(response)
            raise
        if not is_stream:
            # 9.2.3: "HTTP 204 No Content ... prevents reconnection". Not an error.
            logger.info("%s answered 204 No Content: not reconnecting", self.url)
            self._state = "closed"
            await _close_response(response)
            return
        self._response = response
        self._chunks = response.aiter_bytes()
        self._chunks_started = False
        self._chunks_done = False
        self._received = False
        self._connections += 1
        self._state = "open"
        logger.info("connected to %s (connection %d)", self.url, self._connections)

    async def _read_chunk(self) -> None:
        assert self._chunks is not None
        self._chunks_started = True
        try:
            chunk = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._chunks_done = True
            await self._connection_ended(None)
            return
        except self._http.read_errors as error:
            self._chunks_done = True
            await self._connection_ended(error)
            return
        except BaseException:
            # Cancelled (or anything else): it came up through httpx's generators, which
            # have all finished; the response itself is closed by aclose().
            self._chunks_done = True
            raise
        if not self._received:
            # The server is really streaming: this connection counts as a success.
            self._received = True
            self._failures = 0
        self._pending.extend(self._decoder.feed(chunk))

    async def _connection_ended(self, error: BaseException | None) -> None:
        received = self._received
        await self._drop_connection()
        if not self._reconnect:
            self._state = "closed"
            if error is None:
                return  # a clean end of stream ends the iteration
            raise SSEConnectionError(
                f"the connection to {self.url} was lost: {_describe(error)}", attempts=0
            ) from error
        self._state = "connecting"
        if received:
            logger.info(
                "the stream from %s ended (%s)",
                self.url,
                "cleanly" if error is None else _describe(error),
            )
        else:
            # Accepted but nothing came: counted like a refused connection, so that a server
            # that answers 200 and hangs up at once is not hammered forever.
            self._fail(error)

    async def _drop_connection(self) -> None:
        response, chunks = self._response, self._chunks
        unwind = self._chunks_started and not self._chunks_done
        self._response = None
        self._chunks = None
        self._chunks_done = True
        if response is None:
            return
        # 9.2.6: at the end of a stream, pending data is discarded; the last event ID and the
        # reconnection time persist.
        self._decoder.close()
        with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
            if unwind and chunks is not None:
                # httpx and httpcore read a body through nested async generators; closing the
                # outer one leaves the inner ones suspended, and trio warns when those are
                # garbage collected (encode/httpx#3686). Resuming the iterator in a cancelled
                # scope makes the cancellation rise from the innermost socket read through
                # every generator, so they all finish here, now.
                with anyio.CancelScope() as unwinding:
                    unwinding.cancel()
                    for _ in range(_DRAIN_LIMIT):
                        try:
                            await chunks.__anext__()
                        except Exception:
                            break
            await _close_response(response)


def _reason_phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _check_response(response: Response, method: str, retry_statuses: frozenset[int]) -> bool:
    """True for an event stream, False for 204; raise for anything else (9.2.3)."""
    status = response.status_code
    if status == 204:
        return False
    url = response.request.url
    if status != 200:
        # Some servers (hypercorn) send no reason phrase: name the status anyway.
        reason = response.reason_phrase or _reason_phrase(status)
        error = SSEStatusError(
            f"{method} {url} answered {status} {reason} instead of 200 with an event stream",
            response,
        )
        if status in retry_statuses:
            raise _RetryableStatus(error)
        raise error
    content_type: str = response.headers.get("content-type", "")
    # Compare the MIME type's essence, not a substring: "text/event-stream-ish" is not an event
    # stream, "Text/Event-Stream; charset=utf-8" is.
    if content_type.partition(";")[0].strip().lower() != "text/event-stream":
        raise SSEContentTypeError(
            f"{method} {url} answered with Content-Type {content_type or '(none)'!r}"
            " instead of 'text/event-stream'",
            response,
        )
    return True


async def _close_response(response: Response) -> None:
    with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
        try:
            await response.aclose()
        except Exception as error:  # closing a broken connection may fail: nothing to do
            logger.debug("closing the response failed: %s", _describe(error))


def connect(
    client: AsyncClient,
    url: URL | str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    reconnect: bool = True,
    last_event_id: str | None = None,
    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS,
    backoff: float = DEFAULT_BACKOFF,
    max_backoff: float = DEFAULT_MAX_BACKOFF,
    backoff_factor: float = DEFAULT_BACKOFF_FACTOR,
    jitter: float = DEFAULT_JITTER,
    retry_statuses: Collection[int] = (),
    **request_kwargs: Any,
) -> EventSource:
    """Open an event stream with *client*, the way a browser's ``EventSource`` does.

    *client* is an ``httpx.AsyncClient`` or an ``httpx2.AsyncClient`` (``TypeError`` for
    anything else); the network errors of either library lead to a reconnection.

    ::

        async with httpx.AsyncClient() as client:
            async with trio_sse.client.connect(client, url) as source:
                async for event in source:
                    print(event.event, event.data, event.id)

    Entering connects (a checkpoint); iterating yields :class:`~trio_sse.ServerSentEvent`
    (``data``, ``event`` or ``None``, ``id``: the last event ID or ``None``, ``retry``,
    ``.json()``); leaving closes the response and its connection, also when cancelled.

    The EventSource model (WHATWG 9.2.3):

    * a 200 response with ``Content-Type: text/event-stream`` is a stream; **204** means "stop":
      no reconnection, iteration ends; any other status raises :class:`SSEStatusError` and a
      wrong content type :class:`SSEContentTypeError`, without reconnecting ("fail the
      connection"). Statuses listed in ``retry_statuses`` (say ``{502, 503, 504}`` behind a
      proxy during a deploy) are retried like a network error instead;
    * after a network error or a clean end of stream, with ``reconnect=True``, it waits and
      reconnects, sending ``Last-Event-ID`` (the ``last_event_id`` given here, or the latest
      ``id`` received). ``reconnect=False``: a clean end stops the iteration, a network error
      raises :class:`SSEConnectionError`.

    The wait before reconnecting: the server's ``retry:``
    if it sent one, else ``backoff`` seconds (3, as Chromium); after repeated failures it grows
    by ``backoff_factor`` up to ``max_backoff`` seconds (never below the server's ``retry``),
    plus up to ``jitter`` times itself at random. An attempt fails when it cannot connect (or
    gets a retried status), or when the stream ends before any byte arrived; the first byte
    resets the count. After ``max_attempts`` consecutive failures (``None``: never)
    :class:`SSEConnectionError` is raised.

    ``headers`` are added to the request (``Accept: text/event-stream`` and ``Cache-Control:
    no-cache`` are sent unless overridden); other keyword arguments go to httpx
    (``params``, ``json``, ``content``, ``cookies``, ``auth``, ``timeout``, ...) and are sent
    again on each reconnection, so a body must be bytes, text, ``json`` or ``data``, not a
    stream. Redirects are followed unless ``follow_redirects=False``. Unless ``timeout`` is
    given, the read timeout is off (a stream may be quiet for long) and the client's other
    timeouts apply; to detect a dead connection, pass a read timeout a little above the
    server's keep-alive interval, and it will reconnect.
    """
    return EventSource(
        client,
        url,
        method=method,
        headers=headers,
        reconnect=reconnect,
        last_event_id=last_event_id,
        max_attempts=max_attempts,
        backoff=backoff,
        max_backoff=max_backoff,
        backoff_factor=backoff_factor,
        jitter=jitter,
        retry_statuses=retry_statuses,
        request_kwargs=request_kwargs,
    )
