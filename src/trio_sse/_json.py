"""Event data as JSON: FastAPI's rules for what ``json`` cannot write, ``json``'s speed for the rest.

Standard library only, and nothing imported for a type the program never loaded: a value can
only be a ``Decimal`` if ``decimal`` is in ``sys.modules``, a Pydantic model only if
``pydantic`` is, so each rule looks its classes up there when it is first needed. Plain data
(dicts, lists, strings, numbers) never reaches those rules: it is written by ``json``'s C
encoder, whose ``default`` hook is only called for an object it does not know.

The rules follow ``fastapi.encoders.jsonable_encoder`` (FastAPI 0.165): Pydantic models by
``model_dump(mode="json", by_alias=True)``; dataclasses by their fields; enums by their value;
``datetime``/``date``/``time`` by ``isoformat()``; ``timedelta`` as seconds; ``Decimal`` as an
``int`` when it has no fractional exponent, else a ``float``; ``set``/``frozenset``/``deque``/
generators as lists; ``UUID``, paths, IP addresses and networks, Pydantic URLs, ``NameEmail``
and secrets (masked) by ``str()``; a compiled pattern by its pattern; ``bytes`` decoded as
UTF-8. Unlike FastAPI, an object that no rule covers is not read through ``dict(obj)`` or
``vars(obj)``: it is a ``TypeError`` naming its type (silently sending an object's attributes
is how secrets leak). Dict keys go through the same rules (a ``UUID`` or enum key is fine).

A ``json_dumps`` callable (``orjson.dumps``, ``msgspec.json.encode``...) replaces the built-in
encoder; it may return ``str`` or UTF-8 ``bytes``. Given an object it cannot write (a Pydantic
model, for orjson), it is called again on the object converted by the rules above.

Nothing here is a checkpoint.
"""

from __future__ import annotations

import contextvars
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ._validate import shown

__all__ = [
    "JSONDumps",
    "is_model",
    "json_dumps_is_current",
    "jsonable",
    "stream_json_dumps",
    "to_json",
    "using_json_dumps",
]

JSONDumps = Callable[[Any], str | bytes]

# The ``json_dumps`` of the stream whose tasks are running (set by ``EventSourceResponse`` for
# the length of its ASGI call): a ``JSONServerSentEvent`` built by a producer without its own
# ``json_dumps`` uses it, as do the models the stream is handed as items.
stream_json_dumps: contextvars.ContextVar[JSONDumps | None] = contextvars.ContextVar(
    "trio_sse_json_dumps", default=None
)


def json_dumps_is_current(dumps: JSONDumps | None) -> bool:
    """Whether *dumps* is already the current stream's ``json_dumps`` (most streams: ``None``
    inside ``None``), so that setting it would change nothing. Lets a stream skip the
    ``with using_json_dumps(...)`` that every open stream would otherwise keep (a context
    manager, its generator and a context variable token: GC-tracked objects, issue 18)."""
    return stream_json_dumps.get() is dumps


@contextmanager
def using_json_dumps(dumps: JSONDumps | None) -> Iterator[None]:
    """Make *dumps* the current stream's ``json_dumps`` inside the ``with`` block."""
    token = stream_json_dumps.set(dumps)
    try:
        yield
    finally:
        stream_json_dumps.reset(token)


# -- the rules ------------------------------------------------------------------------------------


def _utf8(value: bytes | bytearray) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        # FastAPI's ``bytes.decode()`` too; a ValueError, as a NaN is: the type is fine.
        raise ValueError(f"bytes in JSON data must be UTF-8 text ({exc.reason})") from None


def _decimal(value: Any) -> int | float:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= 0:
        return int(value)
    return float(value)


def _fields(value: Any) -> dict[str, Any]:
    # One level only (not ``dataclasses.asdict``, which deep-copies every value): a nested
    # dataclass comes back through the hook by itself.
    return {
        field.name: getattr(value, field.name) for field in sys.modules["dataclasses"].fields(value)
    }


def _model(value: Any) -> Any:
    return value.model_dump(mode="json", by_alias=True)


# (module, class names, converter): a class is looked up only when its module is loaded.
_RULES: tuple[tuple[str, tuple[str, ...], Callable[[Any], Any]], ...] = (
    ("enum", ("Enum",), lambda value: value.value),
    ("pathlib", ("PurePath",), str),
    ("datetime", ("date", "time"), lambda value: value.isoformat()),  # datetime is a date
    ("datetime", ("timedelta",), lambda value: value.total_seconds()),
    ("decimal", ("Decimal",), _decimal),
    ("uuid", ("UUID",), str),
    ("builtins", ("bytes", "bytearray"), _utf8),
    ("builtins", ("set", "frozenset"), list),
    ("collections", ("deque",), list),
    ("types", ("GeneratorType",), list),
    ("re", ("Pattern",), lambda value: value.pattern),
    (
        "ipaddress",
        (
            "IPv4Address",
            "IPv4Interface",
            "IPv4Network",
            "IPv6Address",
            "IPv6Interface",
            "IPv6Network",
        ),
        str,
    ),
    ("pydantic", ("AnyUrl", "NameEmail", "SecretStr", "SecretBytes"), str),
    ("pydantic_core", ("Url", "MultiHostUrl"), str),
)

# type -> converter, for the types already met (a type's classes never change). Bounded: a
# program that makes classes on the fly must not grow it for ever.
_CACHE: dict[type, Callable[[Any], Any]] = {}
_CACHE_SIZE = 512


def _classes(module_name: str, names: tuple[str, ...]) -> tuple[type, ...]:
    module = sys.modules.get(module_name)
    if module is None:
        return ()
    found = (getattr(module, name, None) for name in names)
    return tuple(cls for cls in found if isinstance(cls, type))


_model_base: type | None = None


def _model_class() -> type | None:
    """``pydantic.BaseModel`` once Pydantic is loaded, else ``None``; kept once found (an
    attribute of ``pydantic`` itself goes through its slow lazy-import ``__getattr__``)."""
    global _model_base
    if _model_base is None:
        main = sys.modules.get("pydantic.main")
        cls = getattr(main, "BaseModel", None) if main is not None else None
        if isinstance(cls, type):
            _model_base = cls
    return _model_base


# Types that are never models: the items a stream is most often given, answered at once.
_NOT_MODELS = frozenset({int, float, bool, str, bytes, list, tuple, dict, type(None)})


def is_model(value: object) -> bool:
    """Whether *value* is a Pydantic model or a dataclass instance (data whose ``str()`` is of
    no use to a client). Never imports Pydantic."""
    cls = type(value)
    if cls in _NOT_MODELS:
        return False
    if hasattr(cls, "__dataclass_fields__"):
        return True
    base = _model_class()
    return base is not None and issubclass(cls, base)


def _find(cls: type) -> Callable[[Any], Any] | None:
    base = _model_class()
    if base is not None and issubclass(cls, base):
        return _model
    if hasattr(cls, "__dataclass_fields__"):
        return _fields
    for module_name, names, convert in _RULES:
        classes = _classes(module_name, names)
        if classes and issubclass(cls, classes):
            return convert
    return None


def _converter(cls: type) -> Callable[[Any], Any]:
    convert = _CACHE.get(cls)
    if convert is None:
        convert = _find(cls)
        if convert is None:
            raise TypeError(f"Object of type {cls.__qualname__} is not JSON serializable")
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[cls] = convert
    return convert


def _default(value: Any) -> Any:
    # json's ``default`` hook: called for an object the C encoder cannot write, never for
    # plain data; what it returns is encoded in its place.
    return _converter(type(value))(value)


_PLAIN_KEYS = (str, int, float, bool, type(None))


def jsonable(value: Any, _path: set[int] | None = None) -> Any:
    """*value* converted by the rules to what ``json`` (or orjson, msgspec) writes, keys too.

    ``TypeError`` for an object no rule covers, ``ValueError`` for a cycle.
    """
    cls = type(value)
    if cls is str or cls is int or cls is float or cls is bool or value is None:
        return value
    path = set() if _path is None else _path
    if id(value) in path:
        raise ValueError("Circular reference detected")
    path.add(id(value))
    try:
        if isinstance(value, dict):
            return {_key(key, path): jsonable(item, path) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [jsonable(item, path) for item in value]
        if isinstance(value, (str, int, float)) and not _is_enum(value):
            return value
        return jsonable(_converter(cls)(value), path)
    finally:
        path.discard(id(value))


def _is_enum(value: object) -> bool:
    return "enum" in sys.modules and isinstance(value, sys.modules["enum"].Enum)


def _key(key: Any, path: set[int]) -> Any:
    converted = jsonable(key, path)
    if not isinstance(converted, _PLAIN_KEYS):
        raise TypeError(f"a dict key of type {type(key).__qualname__} is not a JSON object key")
    return converted


# -- encoding -------------------------------------------------------------------------------------

# One encoder for every event: ``json.dumps`` with options builds a new JSONEncoder per call.
_encode = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_default
).encode


def _type_error(exc: Exception, data: object) -> TypeError:
    return TypeError(f"data must be JSON serialisable ({exc}), got {shown(data)}")


def _value_error(exc: Exception, data: object) -> ValueError:
    # NaN or an infinity (browsers' JSON.parse refuses them), a cycle, non-UTF-8 bytes.
    return ValueError(f"data must be valid JSON ({exc}), got {shown(data)}")


def to_json(data: object, dumps: JSONDumps | None = None) -> str:
    """*data* as compact JSON text: with *dumps* if given, else the current stream's
    ``json_dumps``, else the built-in encoder (``ensure_ascii=False``, ``allow_nan=False``).

    Errors name ``data`` (the rule of ``_validate``): ``TypeError`` for an object that cannot
    be written, ``ValueError`` for a value that cannot (NaN, a cycle).
    """
    if dumps is None:
        dumps = stream_json_dumps.get()
        if dumps is None:
            try:
                return _encode(data)
            except TypeError as exc:  # an unknown object, or a dict key json cannot write
                text: str = _retry(data, exc, _encode)
                return text
            except ValueError as exc:
                raise _value_error(exc, data) from exc
    return _custom(data, dumps)


def _retry(data: object, first: TypeError, dumps: Callable[[Any], Any]) -> Any:
    # The slow path: convert everything (keys too) by the rules, then encode again. An object
    # no rule covers fails the conversion, with a message naming its type.
    try:
        converted = jsonable(data)
    except TypeError as exc:
        raise _type_error(exc, data) from exc
    except ValueError as exc:
        raise _value_error(exc, data) from exc
    try:
        return dumps(converted)
    except TypeError as exc:
        raise _type_error(exc, data) from first
    except ValueError as exc:
        raise _value_error(exc, data) from exc


def _custom(data: object, dumps: JSONDumps) -> str:
    try:
        out = dumps(data)
    except TypeError as exc:  # orjson.JSONEncodeError is one too
        out = _retry(data, exc, dumps)
    except ValueError as exc:
        raise _value_error(exc, data) from exc
    if type(out) is str:
        return out
    if isinstance(out, (bytes, bytearray, memoryview)):
        try:
            return bytes(out).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"json_dumps returned bytes that are not UTF-8 ({exc.reason})"
            ) from None
    raise TypeError(f"json_dumps must return str or bytes, got {shown(out)}")
