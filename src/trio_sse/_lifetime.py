"""``seconds_until``: a stream's ``max_duration`` from a credential's expiry time."""

from __future__ import annotations

import datetime
import time

from ._validate import is_number, seconds, shown

__all__ = ["seconds_until"]

# A lifetime is never zero: a credential that has already expired still gets a stream that
# ends at once, with its farewell and retry hint, rather than an error page.
_SHORTEST = 0.001


def seconds_until(expiry: datetime.datetime | float, *, early: float = 0.0) -> float:
    """Seconds from now until *expiry*, less *early*: ``max_duration`` for a stream that
    must end when the credential it was opened with expires.

    *expiry* is an aware ``datetime`` or a POSIX timestamp (a JWT's ``exp``); a naive
    ``datetime`` is a ``ValueError`` (its time zone would be a guess). *early* ends the
    stream that many seconds before the expiry, so that the client reconnects with a fresh
    credential in time. An expiry already past gives a lifetime of a millisecond: the stream
    ends at once, with the response's farewell. Reads the wall clock; not a checkpoint.

    ``EventSourceResponse(producer, max_duration=seconds_until(claims["exp"], early=5))``
    """
    early = seconds("early", early)
    if isinstance(expiry, datetime.datetime):
        if expiry.tzinfo is None or expiry.utcoffset() is None:
            raise ValueError(f"expiry must be an aware datetime, got the naive {shown(expiry)}")
        at = expiry.timestamp()
    elif is_number(expiry):
        at = float(expiry)
    else:
        raise TypeError(
            f"expiry must be an aware datetime or a POSIX timestamp, got {shown(expiry)}"
        )
    return max(at - early - time.time(), _SHORTEST)
