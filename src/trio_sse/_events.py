"""``ServerSentEvent`` and ``JSONServerSentEvent``: immutable events, checked when built.

Standard library only.  An event is validated once, in its constructor, so that a bad
value fails where the user wrote it rather than deep inside a stream, and so that the
stream loop can encode without re-checking.  The encoded bytes are cached per separator:
an event published to a thousand subscribers is encoded once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, NoReturn

from ._encoder import check_sep, encode_fields, plain_str
from ._json import JSONDumps, is_model, to_json
from ._validate import non_negative_int, shown

if TYPE_CHECKING:  # a default (PEP 696): a bare ``ServerSentEvent`` is ``ServerSentEvent[Any]``
    from typing_extensions import TypeVar

    DataT = TypeVar("DataT", default=Any)
else:  # at run time the parameter only carries the type (FastAPI's documentation reads it)
    from typing import TypeVar

    DataT = TypeVar("DataT")

__all__ = ["JSONServerSentEvent", "ServerSentEvent", "encode_item", "event_from_mapping"]

DEFAULT_SEPARATOR = "\r\n"

_FIELDS = ("data", "event", "id", "retry", "comment", "sep")


def _check_retry(retry: object) -> int | None:
    # bool is an int subclass, but ``retry=True`` is always a bug: a TypeError, as "ten" is.
    if retry is None:
        return None
    return int(non_negative_int("retry", retry, what="an int (milliseconds)"))


def _check_event(event: object) -> str | None:
    if event is None:
        return None
    if not isinstance(event, str):
        raise TypeError(f"event must be a str, got {shown(event)}")
    if "\n" in event or "\r" in event:
        raise ValueError(f"event must not contain CR or LF, got {event!r}")
    return plain_str(event)


def _check_id(id: object) -> str | None:
    if id is None:
        return None
    if isinstance(id, int) and not isinstance(id, bool):
        return str(id)
    if not isinstance(id, str):
        raise TypeError(f"id must be a str or an int, got {shown(id)}")
    # An id is never rewritten: a "cleaned" id would break Last-Event-ID resume.
    if "\n" in id or "\r" in id or "\0" in id:
        raise ValueError(f"id must not contain CR, LF or NUL, got {id!r}")
    return plain_str(id)


def _refuse(event: ServerSentEvent, name: str) -> NoReturn:
    raise AttributeError(f"{type(event).__name__} is immutable; use .replace({name}=...)")


class ServerSentEvent(Generic[DataT]):
    """One event of a ``text/event-stream``.

    ``ServerSentEvent(data=None, *, event=None, id=None, retry=None, comment=None, sep=None)``

    * ``data``: any object; ``None`` means no ``data`` field, a non-``str`` value is ``str()``-ed
      (:class:`JSONServerSentEvent` writes JSON instead). Multi-line data (CRLF, CR or LF) is
      written as several ``data:`` lines, and ``""`` is one empty ``data`` line (an event a
      browser dispatches with empty data). The attribute ``data`` is the text written.
    * ``event``: the event type (``addEventListener`` name); no CR or LF.
    * ``id``: the event id (``str``, or an ``int`` which is kept as its decimal string); no CR, LF
      or NUL. It is never rewritten: resume by ``Last-Event-ID`` relies on it.
    * ``retry``: the reconnection time in milliseconds, a non-negative ``int`` (not a ``bool``).
    * ``comment``: a comment; several lines become several comment lines.
    * ``sep``: this event's line end (``"\\r\\n"``, ``"\\n"`` or ``"\\r"``), or ``None`` to use the
      one the caller of :meth:`encode` (the response) chooses.

    A value of the wrong type raises ``TypeError`` (``retry="ten"``, ``retry=True``), a bad value
    of the right type ``ValueError`` (``retry=-1``, a line break in ``event``); the message names
    the field and shows the value (the rule of ``trio_sse._validate``).
    Events are immutable and hashable; equality compares the fields except ``sep``, which is
    presentation, not content.  ``copy.replace(event, id="7")`` (or :meth:`replace`) makes a
    changed copy, validated again.

    **Typed events.** The class is generic in the type of the data it is built from:
    ``JSONServerSentEvent(Tick(...))`` is a ``JSONServerSentEvent[Tick]``, and type checkers
    see it. A FastAPI path operation annotated ``-> AsyncIterator[JSONServerSentEvent[Tick]]``
    has each event's JSON data validated against ``Tick`` before it is sent, and its OpenAPI
    document describes it (see ``trio_sse.fastapi``); a ``ServerSentEvent[T]``'s data is text,
    documented as a string. A subclass may fix the event name: ``class
    TickEvent(JSONServerSentEvent[Tick], event="tick")`` makes events named ``tick`` (its
    ``fixed_event`` class attribute); giving another ``event=`` is a ``ValueError``.
    """

    #: The event name every instance of a class declared with ``event="..."`` carries.
    fixed_event: ClassVar[str | None] = None

    # The fields live in private slots behind read-only properties: building an event is then
    # plain slot stores, which a stream does once per event (see benchmarks/, "encode").
    __slots__ = ("_cache", "_cache_sep", "_comment", "_data", "_event", "_id", "_retry", "_sep")

    _data: str | None
    _event: str | None
    _id: str | None
    _retry: int | None
    _comment: str | None
    _sep: str | None
    # The last encoding and its separator (None: none yet). Two slots rather than one tuple:
    # no container allocated per event for the garbage collector to count (issue 18).
    _cache: bytes | None
    _cache_sep: str | None

    def __init__(
        self,
        data: DataT | None = None,
        *,
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
        comment: str | None = None,
        sep: str | None = None,
    ) -> None:
        # Each check has an inline fast path for the common, valid value; anything else goes
        # to the full check, which also produces the error.
        self._data = None if data is None else data if type(data) is str else str(data)  # type: ignore[assignment]
        if event is not None and (type(event) is not str or "\n" in event or "\r" in event):
            event = _check_event(event)
        self._event = event
        if id is not None and (type(id) is not str or "\n" in id or "\r" in id or "\0" in id):
            id = _check_id(id)
        self._id = id
        self._retry = None if retry is None else _check_retry(retry)
        self._comment = None if comment is None else str(comment)
        self._sep = None if sep is None else check_sep(sep)
        self._cache = None
        self._cache_sep = None

    def __init_subclass__(cls, *, event: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if event is not None:
            _fix_event(cls, _check_event(event))

    @property
    def data(self) -> str | None:
        """The data as written (``None``: no ``data`` field)."""
        return self._data

    @data.setter
    def data(self, value: object) -> None:
        _refuse(self, "data")

    @data.deleter
    def data(self) -> None:
        _refuse(self, "data")

    @property
    def event(self) -> str | None:
        """The event type (``None``: the default, ``message``)."""
        return self._event

    @event.setter
    def event(self, value: object) -> None:
        _refuse(self, "event")

    @event.deleter
    def event(self) -> None:
        _refuse(self, "event")

    @property
    def id(self) -> str | None:
        """The event id, never rewritten."""
        return self._id

    @id.setter
    def id(self, value: object) -> None:
        _refuse(self, "id")

    @id.deleter
    def id(self) -> None:
        _refuse(self, "id")

    @property
    def retry(self) -> int | None:
        """The reconnection time in milliseconds."""
        return self._retry

    @retry.setter
    def retry(self, value: object) -> None:
        _refuse(self, "retry")

    @retry.deleter
    def retry(self) -> None:
        _refuse(self, "retry")

    @property
    def comment(self) -> str | None:
        """The comment."""
        return self._comment

    @comment.setter
    def comment(self, value: object) -> None:
        _refuse(self, "comment")

    @comment.deleter
    def comment(self) -> None:
        _refuse(self, "comment")

    @property
    def sep(self) -> str | None:
        """This event's own line end (``None``: the caller's)."""
        return self._sep

    @sep.setter
    def sep(self, value: object) -> None:
        _refuse(self, "sep")

    @sep.deleter
    def sep(self) -> None:
        _refuse(self, "sep")

    def encode(self, sep: str | None = None) -> bytes:
        """Return the event as UTF-8 bytes, terminated by a blank line.

        The line end is *sep* if given, else the event's own ``sep``, else ``"\\r\\n"``.
        The result is cached per separator (events are immutable), so encoding the same event
        for many subscribers costs one encoding.  Not a checkpoint; never blocks.
        """
        if sep is None:
            sep = self._sep if self._sep is not None else DEFAULT_SEPARATOR
        if self._cache_sep == sep:
            return self._cache  # type: ignore[return-value]
        sep = check_sep(sep)
        encoded = encode_fields(self._data, self._event, self._id, self._retry, self._comment, sep)
        self._cache = encoded
        self._cache_sep = sep
        return encoded

    def _encode_default(self, sep: str) -> bytes:
        # The stream loop's path: the response's *sep* is already validated and only applies
        # when the event has no separator of its own.
        own = self._sep
        if own is not None:
            sep = own
        if self._cache_sep == sep:
            return self._cache  # type: ignore[return-value]
        encoded = encode_fields(self._data, self._event, self._id, self._retry, self._comment, sep)
        self._cache = encoded
        self._cache_sep = sep
        return encoded

    def json(self) -> Any:
        """Parse ``data`` as JSON (``ValueError`` when there is no data or it is not JSON)."""
        if self._data is None:
            raise ValueError("this event has no data to parse as JSON")
        return json.loads(self._data)

    def replace(self, **changes: Any) -> ServerSentEvent[DataT]:
        """Return a copy with *changes* applied (validated like a new event), of the same
        class (a ``JSONServerSentEvent``'s data is its JSON text, not encoded again)."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown ServerSentEvent field(s): {', '.join(sorted(unknown))}")
        fields = {name: getattr(self, name) for name in _FIELDS}
        fields.update(changes)
        data = fields.pop("data")
        _check_fixed(type(self), fields["event"])
        event = ServerSentEvent(data, **fields)  # data is text already: never encoded again
        if type(self) is ServerSentEvent:
            return event
        copied = object.__new__(type(self))  # the copy keeps its class (and fixed event)
        for name in ServerSentEvent.__slots__:
            setattr(copied, name, getattr(event, name))
        return copied

    __replace__ = replace

    def _key(self) -> tuple[object, ...]:
        return (self._data, self._event, self._id, self._retry, self._comment)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        parts = [
            f"{name}={getattr(self, name)!r}" for name in _FIELDS if getattr(self, name) is not None
        ]
        return f"{type(self).__name__}({', '.join(parts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (self._data, self._event, self._id, self._retry, self._comment, self._sep),
        )


def _check_fixed(cls: type[ServerSentEvent[Any]], event: object) -> None:
    """``ValueError`` if *cls* fixes its event name and *event* is another."""
    fixed = cls.fixed_event
    if fixed is not None and event != fixed:
        raise ValueError(f"{cls.__name__} events are named {fixed!r}; got event={shown(event)}")


def _fix_event(cls: type[ServerSentEvent[Any]], fixed: str | None) -> None:
    """Make every instance of *cls* carry the event name *fixed* (``class E(..., event=...)``).

    The class's ``__init__`` is wrapped once, here: the base class's hot path is untouched."""
    parent_init = cls.__init__

    def __init__(
        self: ServerSentEvent[Any], *args: Any, event: str | None = None, **kw: Any
    ) -> None:
        if event is not None:
            _check_fixed(cls, event)
        parent_init(self, *args, event=fixed, **kw)

    __init__.__doc__ = parent_init.__doc__
    cls.__init__ = __init__  # type: ignore[method-assign]
    cls.fixed_event = fixed


def _rebuild(
    data: str | None,
    event: str | None,
    id: str | None,
    retry: int | None,
    comment: str | None,
    sep: str | None,
) -> ServerSentEvent:
    return ServerSentEvent(data, event=event, id=id, retry=retry, comment=comment, sep=sep)


class JSONServerSentEvent(ServerSentEvent[DataT]):
    """A :class:`ServerSentEvent` whose ``data`` is *data* serialised as compact JSON.

    ``json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))``: UTF-8
    text rather than ``\\u`` escapes, and ``NaN``/``Infinity`` refused (``ValueError``) because
    browsers' ``JSON.parse`` rejects them; an object JSON cannot represent is a ``TypeError``.
    Both messages name ``data``. As in sse-starlette, ``data=None`` means no data field.

    What ``json`` cannot write follows FastAPI's rules (see ``trio_sse._json``): Pydantic
    models, dataclasses, enums, datetimes, ``UUID``, ``Decimal``, sets, paths, UTF-8 ``bytes``.
    ``json_dumps``: a callable ``(obj) -> str | bytes`` used instead (``orjson.dumps``); when
    ``None``, the ``json_dumps`` of the stream whose producer builds the event, if it has one.
    """

    __slots__ = ()

    def __init__(
        self,
        data: DataT | None = None,
        *,
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
        comment: str | None = None,
        sep: str | None = None,
        json_dumps: JSONDumps | None = None,
    ) -> None:
        super().__init__(
            None if data is None else to_json(data, json_dumps),  # type: ignore[arg-type]
            event=event,
            id=id,
            retry=retry,
            comment=comment,
            sep=sep,
        )


def event_from_mapping(
    item: Mapping[str, Any], json_dumps: JSONDumps | None = None
) -> ServerSentEvent:
    """``ServerSentEvent(**item)`` for a dict of its parameters; *item* is not mutated.

    An unknown key is a ``TypeError`` that names it (a misspelt ``"evnet"`` must not vanish).
    A ``"data"`` that is a model (a Pydantic model, a dataclass instance), whose ``str()`` no
    client can use, makes a :class:`JSONServerSentEvent` (with *json_dumps*) instead.
    """
    unknown = [key for key in item if key not in _FIELDS]
    if unknown:
        raise TypeError(
            f"unknown ServerSentEvent field(s) in dict: {', '.join(map(repr, unknown))}"
        )
    fields = dict(item)
    data = fields.pop("data", None)
    if data is not None and type(data) is not str and is_model(data):
        return JSONServerSentEvent(data, json_dumps=json_dumps, **fields)
    return ServerSentEvent(data, **fields)


def encode_item(item: object, sep: str) -> bytes:
    """Encode one stream item the way ``EventSourceResponse`` does.

    ``ServerSentEvent`` -> its encoding (its own ``sep`` wins over *sep*); ``bytes``/
    ``memoryview`` -> as-is (already encoded); ``dict`` -> ``ServerSentEvent(**item)`` (the dict
    is not mutated, an unknown key is a ``TypeError``); a model (Pydantic, dataclass) -> its
    JSON as data (the stream's ``json_dumps``); anything else -> ``str(item)`` as data.
    """
    cls = type(item)
    if cls is ServerSentEvent or cls is JSONServerSentEvent:
        return item._encode_default(sep)  # type: ignore[attr-defined, no-any-return]
    if isinstance(item, ServerSentEvent):
        return item._encode_default(sep)
    if cls is bytes:
        return item  # type: ignore[return-value]
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, Mapping):
        return event_from_mapping(item)._encode_default(sep)
    if cls is str and "\n" not in item and "\r" not in item:  # type: ignore[operator]
        return encode_fields(item, None, None, None, None, sep)  # type: ignore[arg-type]
    if is_model(item):
        return JSONServerSentEvent(item)._encode_default(sep)
    return ServerSentEvent(str(item))._encode_default(sep)
