"""Events to bytes, exactly as the WHATWG ``text/event-stream`` format wants them.

Standard library only, and pure: strings in, bytes out.  The field order is fixed
(comment, id, event, data, retry, blank line) so that output is byte-for-byte
predictable, which the tests and the broadcast cache rely on.
"""

from __future__ import annotations

import re

from ._validate import shown

__all__ = ["SEPARATORS", "check_sep", "encode_fields", "plain_str", "split_lines"]

#: The three line ends the WHATWG grammar accepts ("end-of-line = ( cr lf / cr / lf )").
SEPARATORS: frozenset[str] = frozenset({"\r\n", "\n", "\r"})

# CRLF first so that one CRLF is one break, not two (WHATWG 9.2.5 "end-of-line").
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def check_sep(sep: object, *, field: str = "sep") -> str:
    """Return *sep* if it is one of the three line ends.

    Not a ``str``: ``TypeError``; another string: ``ValueError`` (the rule of ``_validate``).
    """
    if type(sep) is str and sep in SEPARATORS:  # the common case, first
        return sep
    # isinstance before the lookup: an unhashable sep (a list) gets this message, not the
    # frozenset's own TypeError.
    choices = "one of '\\r\\n', '\\n' or '\\r'"
    if not isinstance(sep, str):
        raise TypeError(f"{field} must be {choices} (a str), got {shown(sep)}")
    if sep not in SEPARATORS:
        raise ValueError(f"{field} must be {choices}, got {shown(sep)}")
    return plain_str(sep)


def plain_str(text: str) -> str:
    """*text* as a plain ``str`` (a ``str`` subclass's own characters, as concatenation reads
    them): the encoder's f-strings would call a subclass's ``__format__`` (a ``(str, Enum)``
    member's is ``"Kind.TICK"``, not its value)."""
    return text if type(text) is str else str.__str__(text)


def split_lines(text: str) -> list[str]:
    """Split *text* on CRLF, CR and LF (and nothing else: not on U+2028 like ``splitlines``).

    A trailing line end gives a trailing empty line, so ``"a\\n"`` is ``["a", ""]``: that is
    what makes data ending in a newline survive a round trip.
    """
    if "\r" in text:
        return _LINE_BREAK.split(text)
    if "\n" in text:
        return text.split("\n")
    return [text]


def encode_fields(
    data: str | None,
    event: str | None,
    id: str | None,
    retry: int | None,
    comment: str | None,
    sep: str,
) -> bytes:
    """Encode already-validated fields as one event block, terminated by a blank line.

    Every value is written after ``": "``; a decoder strips exactly one leading space
    (WHATWG 9.2.6), so a value that itself starts with a space keeps it.
    """
    # f-strings: CPython builds each in one allocation, the cheapest way it has to join a few
    # short strings (an event is encoded once per stream item, and once for all subscribers
    # of a broadcast). The common event first: one line of data, maybe an id and a type.
    if (
        comment is None
        and retry is None
        and data is not None
        and "\n" not in data
        and "\r" not in data
    ):
        if event is None:  # the most common of all: one string, one encoding
            if id is None:
                return f"data: {data}{sep}{sep}".encode()
            return f"id: {id}{sep}data: {data}{sep}{sep}".encode()
        head = "" if id is None else f"id: {id}{sep}"
        return f"{head}event: {event}{sep}data: {data}{sep}{sep}".encode()
    return _encode_any(data, event, id, retry, comment, sep)


def _encode_any(
    data: str | None,
    event: str | None,
    id: str | None,
    retry: int | None,
    comment: str | None,
    sep: str,
) -> bytes:
    """:func:`encode_fields` for any event: comments, several lines, ``retry``, no data."""
    text = ""
    if comment is not None:
        text = f": {(sep + ': ').join(split_lines(comment))}{sep}"
    if id is not None:
        text = f"{text}id: {id}{sep}"
    if event is not None:
        text = f"{text}event: {event}{sep}"
    if data is not None:
        text = f"{text}data: {(sep + 'data: ').join(split_lines(data))}{sep}"
    if retry is not None:
        text = f"{text}retry: {retry}{sep}"
    return f"{text}{sep}".encode()
