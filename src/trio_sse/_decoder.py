"""Bytes to events: the WHATWG "interpreting an event stream" algorithm, incrementally.

Standard library only, and pure: :meth:`EventDecoder.feed` takes bytes and returns the
events they complete; it never blocks, never does I/O and is not a checkpoint.  The same
decoder serves the HTTP client, the test client and the benchmarks, so it works on whole
strings (``str.split``, ``str.partition``, ``str.replace``) and never loops per character.

References are to the HTML Living Standard, section 9.2.6 "Interpreting an event stream".
"""

from __future__ import annotations

import codecs

from ._events import ServerSentEvent

__all__ = ["EventDecoder"]


class EventDecoder:
    """Incremental decoder for a ``text/event-stream`` byte stream.

    ``EventDecoder(*, comments=False)``

    Feed it the body of one connection, chunk by chunk, in any split: the events, and the
    decoder's state, are the same whatever the chunk boundaries (a UTF-8 character, a BOM or a
    CRLF may be split across two chunks).  Parsing follows WHATWG 9.2.6 exactly:

    * UTF-8 with invalid bytes replaced by U+FFFD; one leading BOM is stripped (a second is
      data);
    * lines end with CRLF, CR or LF; a line is handled as soon as its line end is seen (a CR at
      the end of a chunk is not held back waiting for a possible LF);
    * an empty line dispatches the event; a line starting with ``:`` is a comment; ``name:value``
      (one leading space of the value stripped) or ``name`` alone (empty value) is a field;
      ``event``, ``data``, ``id`` (ignored if it contains NUL) and ``retry`` (only ASCII digits)
      are understood, other fields ignored.

    A dispatched event becomes ``ServerSentEvent(data, event=..., id=..., retry=...)``:

    * ``data``: the ``data`` lines joined by ``"\\n"``.  A block without any ``data`` field is
      not dispatched (its ``id`` still updates :attr:`last_event_id`, as in a browser);
    * ``event``: the last ``event`` field of the block (possibly ``""``), else ``None``;
    * ``id``: the last event ID (it persists from one event to the next, like a browser's
      ``MessageEvent.lastEventId``), or ``None`` while it is ``""`` and the block had no ``id``
      field;
    * ``retry``: the valid ``retry`` value of this block, else ``None``.

    With ``comments=True`` each comment line is returned too, in stream order, as
    ``ServerSentEvent(comment=text)`` (one leading space of the text stripped).

    The decoder is pure state: :meth:`feed` is not a coroutine, does no I/O and is not a
    checkpoint, so it cannot be cancelled half-way.
    """

    __slots__ = (
        "_block_retry",
        "_comments",
        "_data",
        "_decode",
        "_decoder",
        "_event",
        "_id_buffer",
        "_id_seen",
        "_last_event_id",
        "_partial",
        "_retry",
        "_skip_lf",
    )

    def __init__(self, *, comments: bool = False) -> None:
        self._comments = bool(comments)
        # "utf-8-sig" is UTF-8 that drops exactly one leading BOM, even one split across
        # chunks: the WHATWG "UTF-8 decode" algorithm the spec asks for.  "replace" gives
        # U+FFFD for invalid bytes; the incremental decoder keeps an incomplete character
        # for the next chunk.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._decode = self._decoder.decode
        # Pieces of the current, not yet terminated, line (a list, so that a long line fed
        # in many small chunks is joined once instead of copied at every chunk).
        self._partial: list[str] = []
        # The previous chunk ended with CR: an LF starting the next one belongs to that CRLF.
        self._skip_lf = False
        # The current block (event) being built.
        self._data: list[str] = []
        self._event: str | None = None
        self._id_seen = False
        self._block_retry: int | None = None
        # WHATWG "last event ID buffer" (set by id fields) and "last event ID string" (set
        # from the buffer at each dispatch).
        self._id_buffer = ""
        self._last_event_id = ""
        self._retry: int | None = None

    @property
    def last_event_id(self) -> str:
        """The WHATWG "last event ID string": what to send as ``Last-Event-ID`` on reconnection.

        ``""`` until a block with an ``id`` field is completed by an empty line.  It is kept by
        :meth:`close` (it persists across reconnections).
        """
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The latest valid reconnection time (milliseconds) seen, or ``None``; kept by
        :meth:`close`."""
        return self._retry

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[ServerSentEvent]:
        """Decode *chunk* and return the events it completes, in stream order.

        Pure: not a coroutine, no I/O, not a checkpoint.  An empty list when the chunk only
        extends an unfinished line or event.
        """
        text = self._decode(chunk)
        if not text:
            return []
        if self._skip_lf:
            # The CR that ended the previous chunk was already handled as a line end; an LF
            # right after it completes that CRLF and is not a second (empty) line.
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            self._skip_lf = text[-1] == "\r"
            # CRLF first so that one CRLF stays one line end (WHATWG 9.2.5 "end-of-line").
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        partial = self._partial
        if len(lines) == 1:
            partial.append(text)
            return []
        tail = lines.pop()
        if partial:
            partial.append(lines[0])
            lines[0] = "".join(partial)
            partial.clear()
        if tail:
            partial.append(tail)
        return self._process(lines)

    def close(self) -> None:
        """End of one connection's stream: make the decoder ready for the next connection.

        As WHATWG asks at end of file, pending data is discarded: an unterminated event is not
        dispatched, and a last line without its line end is dropped (as browsers do: a line
        cut by a dropped connection, such as a truncated ``retry``, is not to be trusted).
        The UTF-8 decoder restarts, so the next stream may again begin with a BOM.
        :attr:`last_event_id` and :attr:`retry` are kept: they persist across reconnections,
        and the next stream's ``id`` buffer starts from :attr:`last_event_id`.

        Pure, like :meth:`feed`; calling it twice is harmless.
        """
        self._decoder.reset()
        self._partial.clear()
        self._skip_lf = False
        self._data = []
        self._event = None
        self._id_seen = False
        self._block_retry = None
        self._id_buffer = self._last_event_id

    def _process(self, lines: list[str]) -> list[ServerSentEvent]:
        # Complete lines (without their line ends), in order.  The block's state lives in
        # locals for speed and is stored back at the end; nothing in the loop can raise.
        events: list[ServerSentEvent] = []
        comments = self._comments
        data = self._data
        event = self._event
        id_buffer = self._id_buffer
        id_seen = self._id_seen
        block_retry = self._block_retry
        last_event_id = self._last_event_id
        for line in lines:
            if not line:
                # Empty line: dispatch the event.  The last event ID string is set first,
                # even when the block then turns out to have no data and dispatches nothing.
                last_event_id = id_buffer
                if data:
                    events.append(
                        ServerSentEvent(
                            "\n".join(data),
                            event=event,
                            id=last_event_id if id_seen or last_event_id else None,
                            retry=block_retry,
                        )
                    )
                    data = []
                event = None
                id_seen = False
                block_retry = None
                continue
            name, _, value = line.partition(":")
            if value and value[0] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif not name:
                # The line starts with ":": a comment.
                if comments:
                    events.append(ServerSentEvent(comment=value))
            elif name == "event":
                event = value
            elif name == "id":
                if "\0" not in value:
                    id_buffer = value
                    id_seen = True
            elif name == "retry" and value.isdigit() and value.isascii():
                # isdigit() on an ASCII string means only 0-9 (and it is False for "").
                try:
                    milliseconds = int(value.lstrip("0") or "0")
                except ValueError:
                    # Beyond Python's int-from-str digit limit (thousands of digits): not a
                    # delay anyone can wait for, so the field is ignored.
                    continue
                self._retry = block_retry = milliseconds
            # Any other field is ignored.
        self._data = data
        self._event = event
        self._id_buffer = id_buffer
        self._id_seen = id_seen
        self._block_retry = block_retry
        self._last_event_id = last_event_id
        return events
