"""Events to bytes, exactly as the WHATWG ``text/event-stream`` format wants them.

Standard library only, and pure: strings in, bytes out.  The field order is fixed
(comment, id, event, data, retry, blank line) so that output is byte-for-byte
predictable, which the tests and the broadcast cache rely on.
"""

from __future__ import annotations

import re

from ._validate import shown

__all__ = ["SEPARATORS", "check_sep", "encode_fields", "split_lines"]

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
    return sep


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
    # Plain concatenation of a few short strings: the cheapest way CPython has to build them
    # (an event is encoded once per stream item, and once for all subscribers of a broadcast).
    text = ""
    if comment is not None:
        if "\n" in comment or "\r" in comment:
            text = ": " + (sep + ": ").join(split_lines(comment)) + sep
        else:
            text = ": " + comment + sep
    if id is not None:
        text += "id: " + id + sep
    if event is not None:
        text += "event: " + event + sep
    if data is not None:
        if "\n" in data or "\r" in data:
            text += "data: " + (sep + "data: ").join(split_lines(data)) + sep
        else:
            text += "data: " + data + sep
    if retry is not None:
        text += "retry: " + str(retry) + sep
    return (text + sep).encode("utf-8")
