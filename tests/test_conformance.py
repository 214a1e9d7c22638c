"""The encoder against a decoder nobody here wrote: httpx-sse's.

For hypothesis-generated events encoded by ``ServerSentEvent.encode(sep)``, httpx-sse
(``httpx_sse.connect_sse`` over an ``httpx.MockTransport``, fed in arbitrary chunks) and this
library's ``EventDecoder`` must find the same events. httpx-sse's model differs in presentation,
and the comparison maps ours onto it: an empty or missing event type is ``"message"``, a missing
id is ``""`` (both carry the *last* event ID, as a browser's ``lastEventId`` does).

httpx-sse (0.4.x) departs from the WHATWG parsing algorithm (9.2.6) in a few places. None of
them changes what it reads from this library's encoder for blocks that carry data, which is
what ``test_httpx_sse_reads_what_the_encoder_writes`` proves; each departure is pinned below by a
test asserting that our decoder does what the spec says and that httpx-sse still departs from
it (so that a fixed httpx-sse makes the test fail, and this list gets updated):

1. a block **without data** is dispatched as an event with empty data whenever it has an event
   type, a retry, or any last event ID is set: after one event with an id, every keep-alive
   comment (``: ping``) becomes an empty ``message`` event;
2. **CR-only line ends**: a CR at the end of a chunk is held back until the next chunk, so on a
   live stream an event encoded with ``sep="\\r"`` is only dispatched when more bytes arrive;
3. a leading **BOM** is not stripped, so the first line (usually the first event) is lost;
4. ``retry`` is parsed with ``int()``, so ``+5``, `` 5``, ``1_000``, ``-1`` and non-ASCII digits
   are taken where the spec ignores the field;
5. the body is decoded with the **charset** of the ``Content-Type``, where the spec always
   decodes UTF-8.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import httpx
import httpx_sse
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_sse import EventDecoder, ServerSentEvent
from trio_sse.client import connect

from .live import serving
from .servers.client_app import TRICKY_EVENTS, make_app

Seen = tuple[str, str, str, int | None]

SEPARATORS = ["\r\n", "\n", "\r"]
CONTENT_TYPE = "text/event-stream; charset=utf-8"


# -- the two decoders, in one shape --------------------------------------------------------


def ours(chunks: Sequence[bytes]) -> list[Seen]:
    decoder = EventDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    decoder.close()
    return [as_httpx_sse(event) for event in events]


def as_httpx_sse(event: ServerSentEvent) -> Seen:
    """Our event in httpx-sse's model: type "message" when empty, id "" when none."""
    return (event.event or "message", event.data or "", event.id or "", event.retry)


def theirs(chunks: Sequence[bytes], *, content_type: str = CONTENT_TYPE) -> list[Seen]:
    """httpx-sse's reading of a response body delivered in exactly these chunks."""

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": content_type}, content=iter([c for c in chunks if c])
        )

    with (
        httpx.Client(transport=httpx.MockTransport(respond)) as client,
        httpx_sse.connect_sse(client, "GET", "http://sse.test/") as source,
    ):
        return [(sse.event, sse.data, sse.id, sse.retry) for sse in source.iter_sse()]


def normalise(data: str) -> str:
    return re.sub(r"\r\n|\r|\n", "\n", data)


def spec_model(events: Sequence[ServerSentEvent]) -> list[Seen]:
    """What WHATWG 9.2.6 dispatches for these encoded events, in httpx-sse's shape."""
    seen: list[Seen] = []
    last_id = ""
    for event in events:
        if event.id is not None:
            last_id = event.id
        if event.data is not None:
            seen.append((event.event or "message", normalise(event.data), last_id, event.retry))
    return seen


def httpx_sse_model(events: Sequence[ServerSentEvent]) -> list[Seen]:
    """The same, with httpx-sse's quirk 1: blocks without data are dispatched too when they
    have an event type or a retry, or when a last event ID is set."""
    seen: list[Seen] = []
    last_id = ""
    for event in events:
        if event.id is not None:
            last_id = event.id
        if event.data is None and not event.event and not last_id and event.retry is None:
            continue
        data = "" if event.data is None else normalise(event.data)
        seen.append((event.event or "message", data, last_id, event.retry))
    return seen


def cut(stream: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    return [stream[a:b] for a, b in itertools.pairwise(points)]


# -- generated events ------------------------------------------------------------------------

_tricky = st.sampled_from(
    [
        "\r",
        "\n",
        "\r\n",
        " ",
        "  ",
        ":",
        ": ",
        "\ufeff",
        "\u2028",
        "\x85",
        "\x0b",
        "\x00",
        "é",
        "🎉",
    ]
)
_text = st.lists(st.one_of(st.text(max_size=6), _tricky), max_size=6).map("".join)
_no_line_ends = _text.map(lambda text: text.replace("\r", "").replace("\n", ""))
_data = st.one_of(
    _text,
    _text.map(lambda text: text + "\n"),
    _text.map(lambda text: text + "\r\n\r\n"),
    st.builds(lambda text, n: text * n, st.text(min_size=1, max_size=4), st.integers(500, 4000)),
)
_ids = st.one_of(st.none(), _no_line_ends.map(lambda text: text.replace("\x00", "")))
_events = st.one_of(st.none(), _no_line_ends)
_retries = st.one_of(st.none(), st.integers(0, 10**12))
_comments = st.one_of(st.none(), _text)


def _event(data: st.SearchStrategy[str | None]) -> st.SearchStrategy[ServerSentEvent]:
    return st.builds(
        ServerSentEvent, data, event=_events, id=_ids, retry=_retries, comment=_comments
    )


_with_data = st.lists(st.tuples(_event(_data), st.sampled_from(SEPARATORS)), min_size=1, max_size=8)
# One separator per stream here: an event without any field encodes as a bare line end, and
# a bare "\n" right after an event that ended with "\r" merges with it into one CRLF. That
# changes nothing for the spec (a blank line with nothing pending dispatches nothing) but it
# does for quirk 1, whose model counts blank lines.
_any = st.tuples(
    st.lists(_event(st.one_of(st.none(), _data)), min_size=1, max_size=8),
    st.sampled_from(SEPARATORS),
)
_cuts = st.lists(st.integers(0, 10**6), max_size=12)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(encoded=_with_data, cuts=_cuts)
def test_httpx_sse_reads_what_the_encoder_writes(
    encoded: list[tuple[ServerSentEvent, str]], cuts: list[int]
) -> None:
    events = [event for event, _ in encoded]
    chunks = cut(b"".join(event.encode(sep) for event, sep in encoded), cuts)
    expected = spec_model(events)
    assert ours(chunks) == expected
    assert theirs(chunks) == expected


@SETTINGS
@given(encoded=_any, cuts=_cuts)
def test_blocks_without_data_follow_the_spec_here_and_quirk_1_in_httpx_sse(
    encoded: tuple[list[ServerSentEvent], str], cuts: list[int]
) -> None:
    events, sep = encoded
    chunks = cut(b"".join(event.encode(sep) for event in events), cuts)
    assert ours(chunks) == spec_model(events)
    assert theirs(chunks) == httpx_sse_model(events)


@pytest.mark.parametrize("sep", SEPARATORS, ids=["crlf", "lf", "cr"])
def test_the_tricky_events_read_the_same_with_every_separator(sep: str) -> None:
    stream = b"".join(event.encode(sep) for event in TRICKY_EVENTS)
    expected = spec_model(TRICKY_EVENTS)
    assert len(expected) == len(TRICKY_EVENTS)
    whole = [stream]
    byte_by_byte = [stream[i : i + 1] for i in range(len(stream))]
    for chunks in (whole, byte_by_byte):
        assert ours(chunks) == expected
        assert theirs(chunks) == expected


# -- httpx-sse's departures from WHATWG 9.2.6, pinned ---------------------------------------


# httpx-sse quirk 1: blocks without data are dispatched once a last event ID is set
def test_httpx_sse_turns_a_keep_alive_comment_after_an_id_into_an_event() -> None:
    stream = [b"id: 1\r\ndata: a\r\n\r\n:\r\n\r\n: ping\r\n\r\n"]
    assert ours(stream) == [("message", "a", "1", None)]
    assert theirs(stream) != [("message", "a", "1", None)]


# httpx-sse quirk 1: blocks without data are dispatched
@pytest.mark.parametrize("block", [b"event: update\n\n", b"retry: 5\n\n", b"id: 7\n\n"])
def test_httpx_sse_dispatches_a_block_without_data(block: bytes) -> None:
    assert ours([block]) == []
    assert theirs([block]) != []


# httpx-sse quirk 3: a leading BOM is not stripped
def test_httpx_sse_does_not_strip_a_leading_bom() -> None:
    stream = [b"\xef\xbb\xbfdata: a\n\n"]
    assert ours(stream) == [("message", "a", "", None)]
    assert theirs(stream) != [("message", "a", "", None)]


# httpx-sse quirk 4: retry is parsed with int()
@pytest.mark.parametrize(
    "value",
    ["+5", " 5", "5 ", "1_000", "-1", "٥"],
    ids=["plus", "space", "trailing", "underscore", "negative", "arabic-indic"],
)
def test_httpx_sse_takes_a_retry_that_is_not_ascii_digits(value: str) -> None:
    stream = [f"retry: {value}\ndata: a\n\n".encode()]
    assert ours(stream) == [("message", "a", "", None)]
    assert theirs(stream) != [("message", "a", "", None)]


# httpx-sse quirk 5: the body is decoded with the Content-Type's charset
def test_httpx_sse_decodes_with_the_content_type_charset() -> None:
    stream = ["data: é\n\n".encode()]
    assert ours(stream) == [("message", "é", "", None)]
    assert theirs(stream, content_type="text/event-stream; charset=iso-8859-1") != [
        ("message", "é", "", None)
    ]


# -- over real sockets and live streams (trio and asyncio) -----------------------------------


async def read_with_httpx_sse(http: httpx.AsyncClient, url: str, **kwargs: Any) -> list[Seen]:
    async with httpx_sse.aconnect_sse(http, "GET", url, **kwargs) as source:
        # Read to the end of the stream: httpx's body iterators then finish by themselves.
        return [(sse.event, sse.data, sse.id, sse.retry) async for sse in source.aiter_sse()]


async def read_with_ours(http: httpx.AsyncClient, url: str, **kwargs: Any) -> list[Seen]:
    async with connect(http, url, reconnect=False, **kwargs) as source:
        return [as_httpx_sse(event) async for event in source]


@pytest.mark.anyio
@pytest.mark.parametrize("sep", SEPARATORS, ids=["crlf", "lf", "cr"])
async def test_httpx_sse_and_our_client_read_the_same_from_the_server(sep: str) -> None:
    with anyio.fail_after(15):
        async with serving(make_app()) as url, httpx.AsyncClient() as http:
            theirs_seen = await read_with_httpx_sse(http, f"{url}/fixture", params={"sep": sep})
            ours_seen = await read_with_ours(http, f"{url}/fixture", params={"sep": sep})
    assert ours_seen == theirs_seen == spec_model(TRICKY_EVENTS)


@pytest.mark.anyio
async def test_our_client_ignores_keep_alive_comments() -> None:
    path = "/stream?count=1&ping=0.05&hold=0.4"
    with anyio.fail_after(15):
        async with serving(make_app()) as url, httpx.AsyncClient() as http:
            seen = await read_with_ours(http, url + path)
    assert [(event, event_id) for event, _, event_id, _ in seen] == [("message", "1")]


@pytest.mark.anyio
# httpx-sse quirk 1: keep-alive comments become empty events once an id was seen
async def test_httpx_sse_turns_the_servers_keep_alive_comments_into_events() -> None:
    path = "/stream?count=1&ping=0.05&hold=0.4"
    with anyio.fail_after(15):
        async with serving(make_app()) as url, httpx.AsyncClient() as http:
            seen = await read_with_httpx_sse(http, url + path)
    assert [(event, event_id) for event, _, event_id, _ in seen] != [("message", "1")]


class FedBody(httpx.AsyncByteStream):
    """A response body the test feeds chunk by chunk, knowing when the reader wants more."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[bytes](16)
        self.asked = 0
        self._asked = anyio.Event()

    async def feed(self, chunk: bytes) -> None:
        await self._send.send(chunk)

    def end(self) -> None:
        self._send.close()

    async def wait_asked(self, count: int) -> None:
        """Wait until the reader has asked for *count* chunks: it used all before those."""
        while self.asked < count:
            await self._asked.wait()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            self.asked += 1
            self._asked.set()
            self._asked = anyio.Event()
            try:
                chunk = await self._receive.receive()
            except anyio.EndOfStream:
                return
            yield chunk

    async def aclose(self) -> None:
        self._receive.close()


def fed_client(body: FedBody) -> httpx.AsyncClient:
    async def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": CONTENT_TYPE}, stream=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(respond))


async def dispatched_before_more_bytes(read: Any) -> tuple[list[str], list[str]]:
    """Feed one CR-terminated event; what the reader had dispatched when it wanted more bytes,
    and what it dispatched in all once the body ended."""
    body = FedBody()
    got: list[str] = []
    async with fed_client(body) as http, anyio.create_task_group() as group:
        group.start_soon(read, http, got)
        await body.feed(b"data: one\r\r")
        await body.wait_asked(2)
        before = list(got)
        body.end()
    return before, got


@pytest.mark.anyio
async def test_our_client_dispatches_a_cr_terminated_event_at_once() -> None:
    async def read(http: httpx.AsyncClient, got: list[str]) -> None:
        async with connect(http, "http://sse.test/", reconnect=False) as source:
            async for event in source:
                got.append(event.data or "")

    with anyio.fail_after(5):
        before, after = await dispatched_before_more_bytes(read)
    assert before == after == ["one"]


@pytest.mark.anyio
# httpx-sse quirk 2: a CR at the end of a chunk is held back until the next chunk
async def test_httpx_sse_holds_back_a_cr_terminated_event() -> None:
    async def read(http: httpx.AsyncClient, got: list[str]) -> None:
        async with httpx_sse.aconnect_sse(http, "GET", "http://sse.test/") as source:
            async for sse in source.aiter_sse():
                got.append(sse.data)

    with anyio.fail_after(5):
        before, after = await dispatched_before_more_bytes(read)
    assert after == ["one"]  # it comes, but only at the end of the body
    assert before != ["one"]
