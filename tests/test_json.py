"""JSON event data (issue 14 item 1): FastAPI's encoding rules, the ``json_dumps`` hook.

The values are checked against ``fastapi.encoders.jsonable_encoder`` itself, so "the way
FastAPI does" is what FastAPI does, not what we remember of it.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import functools
import ipaddress
import json
import pathlib
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pydantic
import pydantic_core
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from fastapi.encoders import jsonable_encoder
from pydantic.networks import NameEmail
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import (
    Broadcaster,
    EventDecoder,
    EventSourceResponse,
    JSONServerSentEvent,
    ServerSentEvent,
    _json,
)
from trio_sse._events import encode_item, event_from_mapping
from trio_sse._json import jsonable
from trio_sse.testing import open_event_stream

from .helpers import app_for, sse_app

UTC = datetime.UTC
WHEN = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


class Colour(enum.Enum):
    RED = "red"
    BLUE = 2


class Level(enum.IntEnum):
    HIGH = 3


class Item(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(populate_by_name=True)

    name: str
    when: datetime.datetime
    colour: Colour
    item_id: uuid.UUID = pydantic.Field(alias="itemId")
    price: decimal.Decimal


@dataclasses.dataclass
class Point:
    x: int
    y: float
    when: datetime.date


@dataclasses.dataclass
class Order:
    item: Item
    points: list[Point]
    tags: frozenset[str]


@dataclasses.dataclass
class Holder:
    thing: object


def item() -> Item:
    return Item(
        name="ü",
        when=WHEN,
        colour=Colour.RED,
        itemId=uuid.UUID(int=7),
        price=decimal.Decimal("9.50"),
    )


def data_of(data: object, **kwargs: Any) -> Any:
    return json.loads(JSONServerSentEvent(data, **kwargs).data or "")


def fastapi_json(value: object) -> Any:
    """What a client parses from FastAPI's encoding of *value*."""
    return json.loads(json.dumps(jsonable_encoder(value)))


# --- the rules, against FastAPI's jsonable_encoder ------------------------------------------------

VALUES: list[object] = [
    WHEN,
    datetime.datetime(2024, 1, 2, 3, 4, 5),  # naive
    datetime.date(2024, 2, 29),
    datetime.time(23, 59, 1, 5),
    datetime.timedelta(days=1, seconds=1, microseconds=500000),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Colour.RED,
    Colour.BLUE,
    Level.HIGH,
    decimal.Decimal("1"),
    decimal.Decimal("1.0"),
    decimal.Decimal("-2.25"),
    decimal.Decimal("1E+2"),
    {1, 2, 3},
    frozenset({"a"}),
    collections.deque([1, 2]),
    pathlib.PurePosixPath("/srv/a b"),
    pathlib.Path("relative/x"),
    ipaddress.ip_address("10.0.0.1"),
    ipaddress.ip_address("::1"),
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_interface("10.0.0.1/24"),
    re.compile(r"a+b"),
    b"bytes \xc3\xa9",
    Point(1, 2.5, datetime.date(2020, 1, 1)),
    pydantic.AnyUrl("https://example.org/a"),
    pydantic.HttpUrl("http://example.org"),
    pydantic.SecretStr("hunter2"),  # masked
    pydantic.SecretBytes(b"hunter2"),
    NameEmail("Ann", "ann@example.org"),
    pydantic_core.Url("http://example.org/q"),
    [WHEN, (uuid.UUID(int=1), Colour.BLUE)],
    {"nested": {"when": WHEN, "set": {decimal.Decimal("3")}}},
]


@pytest.mark.parametrize("value", VALUES, ids=lambda value: type(value).__name__)
def test_types_encode_as_fastapi_does(value: object) -> None:
    assert data_of(value) == fastapi_json(value)


def test_pydantic_model_is_model_dump_json_mode_by_alias() -> None:
    model = item()
    assert data_of(model) == model.model_dump(mode="json", by_alias=True)
    assert data_of(model) == fastapi_json(model)
    assert data_of(model)["itemId"] == "00000000-0000-0000-0000-000000000007"
    assert data_of(model)["when"] == "2024-05-06T07:08:09.123456Z"


def test_dataclass_holding_a_model_and_dataclasses() -> None:
    order = Order(item(), [Point(1, 0.5, datetime.date(2021, 3, 4))], frozenset({"t"}))
    assert data_of(order) == fastapi_json(order)
    assert data_of(order)["points"] == [{"x": 1, "y": 0.5, "when": "2021-03-04"}]


def test_generator_becomes_a_list() -> None:
    assert data_of(number for number in range(3)) == [0, 1, 2]


def test_dict_keys_go_through_the_rules() -> None:
    value = {uuid.UUID(int=1): 1, Colour.RED: 2, datetime.date(2020, 1, 1): 3, Level.HIGH: 4}
    assert data_of(value) == fastapi_json(value)
    assert data_of(value) == {
        "00000000-0000-0000-0000-000000000001": 1,
        "red": 2,
        "2020-01-01": 3,
        "3": 4,
    }


def test_plain_data_unchanged() -> None:
    event = JSONServerSentEvent({"a": [1, 2.5, None, True], "é": "x"}, event="e")
    assert event.data == '{"a":[1,2.5,null,true],"é":"x"}'
    assert type(event) is JSONServerSentEvent


def test_round_trip_through_the_decoder() -> None:
    (decoded,) = EventDecoder().feed(JSONServerSentEvent(item(), id=1).encode())
    assert decoded.json() == item().model_dump(mode="json", by_alias=True)


# --- errors ----------------------------------------------------------------------------------


class Opaque:
    def __init__(self) -> None:
        self.secret = "hunter2"


def test_unknown_object_is_a_type_error_naming_its_type() -> None:
    # FastAPI would fall back to vars(obj) and send the secret; trio_sse refuses.
    with pytest.raises(TypeError, match=r"^data must be JSON serialisable \(.*Opaque.*\), got "):
        JSONServerSentEvent({"k": [Opaque()]})


def test_unknown_object_in_a_dataclass() -> None:
    with pytest.raises(TypeError, match=r"Object of type object is not JSON serializable"):
        JSONServerSentEvent(Holder(object()))


def test_unusable_dict_key_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"^data must be JSON serialisable .*key of type tuple"):
        JSONServerSentEvent({(1, 2): "v"})


def test_bytes_that_are_not_utf8_are_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"^data must be valid JSON .*UTF-8.*, got \[b'\\xff'\]"):
        JSONServerSentEvent([b"\xff"])


@pytest.mark.parametrize("bad", [decimal.Decimal("NaN"), float("inf")])
def test_non_finite_numbers_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^data must be valid JSON"):
        JSONServerSentEvent({"v": bad})


def test_cycles_refused() -> None:
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match=r"data must be valid JSON .*[Cc]ircular"):
        JSONServerSentEvent(cycle)
    keyed: dict[object, object] = {uuid.UUID(int=1): None}
    keyed["self"] = keyed
    with pytest.raises(ValueError, match=r"data must be valid JSON .*[Cc]ircular"):
        JSONServerSentEvent(keyed)  # the slow path (a key json cannot write) sees it too


# --- json_dumps --------------------------------------------------------------------------------


def test_json_dumps_str_and_bytes() -> None:
    calls: list[object] = []

    def dumps(obj: object) -> str:
        calls.append(obj)
        return json.dumps(obj, indent=1)

    event = JSONServerSentEvent({"a": 1}, json_dumps=dumps)
    assert calls == [{"a": 1}]
    assert event.data == '{\n "a": 1\n}'
    # Several data lines on the wire; the client joins them back into the same JSON.
    (decoded,) = EventDecoder().feed(event.encode())
    assert decoded.json() == {"a": 1}
    # Another name: the events are generic in their data type (a dict's, then a list's).
    listed = JSONServerSentEvent([1], json_dumps=lambda obj: json.dumps(obj).encode())
    assert listed.data == "[1]"


def test_json_dumps_given_converted_data_when_it_refuses_the_object() -> None:
    seen: list[object] = []

    def strict(obj: object) -> str:
        seen.append(obj)
        return json.dumps(obj)  # no default: refuses a model

    assert json.loads(JSONServerSentEvent(item(), json_dumps=strict).data or "")["name"] == "ü"
    assert isinstance(seen[0], Item)
    assert seen[1] == item().model_dump(mode="json", by_alias=True)


def test_json_dumps_errors() -> None:
    with pytest.raises(TypeError, match=r"^json_dumps must return str or bytes, got 5"):
        JSONServerSentEvent({}, json_dumps=lambda obj: 5)  # type: ignore[arg-type, return-value]
    with pytest.raises(ValueError, match=r"^json_dumps returned bytes that are not UTF-8"):
        JSONServerSentEvent({}, json_dumps=lambda obj: b"\xff")
    with pytest.raises(TypeError, match=r"^data must be JSON serialisable .*Opaque"):
        JSONServerSentEvent(Opaque(), json_dumps=json.dumps)

    def refuses(obj: object) -> str:
        raise ValueError("no NaN here")

    with pytest.raises(ValueError, match=r"^data must be valid JSON \(no NaN here\), got \{\}"):
        JSONServerSentEvent({}, json_dumps=refuses)


def test_orjson() -> None:
    orjson = pytest.importorskip("orjson")
    order = Order(item(), [Point(1, 0.5, datetime.date(2021, 3, 4))], frozenset({"t"}))
    event = JSONServerSentEvent(order, json_dumps=orjson.dumps)  # bytes out; a model inside
    assert json.loads(event.data or "") == fastapi_json(order)
    assert JSONServerSentEvent({"k": "é"}, json_dumps=orjson.dumps).data == '{"k":"é"}'


def test_msgspec() -> None:
    msgspec = pytest.importorskip("msgspec")
    event = JSONServerSentEvent(item(), json_dumps=msgspec.json.encode)
    assert json.loads(event.data or "") == fastapi_json(item())
    point = Point(1, 0.5, datetime.date(2021, 3, 4))
    assert JSONServerSentEvent(point, json_dumps=msgspec.json.encode).json() == {
        "x": 1,
        "y": 0.5,
        "when": "2021-03-04",
    }


# --- models as dict data and as items ------------------------------------------------------------


def test_dict_item_with_model_data_is_json() -> None:
    event = event_from_mapping({"data": item(), "event": "item", "id": "4"})
    assert type(event) is JSONServerSentEvent
    assert (event.event, event.id) == ("item", "4")
    assert event.json() == fastapi_json(item())
    point = Point(1, 2.0, datetime.date(2020, 1, 1))
    assert encode_item({"data": point}, "\n") == (b'data: {"x":1,"y":2.0,"when":"2020-01-01"}\n\n')


def test_dict_item_uses_the_json_dumps_given() -> None:
    event = event_from_mapping({"data": item()}, json_dumps=lambda obj: '"custom"')
    assert event.data == '"custom"'


@pytest.mark.parametrize("data", [5, 2.5, True, {"a": 1}, [1], "text"])
def test_dict_item_with_other_data_is_still_str(data: object) -> None:
    # The contract: a dict item is ServerSentEvent(**item), and non-str data is str()-ed.
    event = event_from_mapping({"data": data})
    assert type(event) is ServerSentEvent
    assert event.data == str(data)


def test_model_item_is_json_other_items_str() -> None:
    assert encode_item(item(), "\n") == JSONServerSentEvent(item()).encode("\n")
    assert encode_item(Point(0, 0.0, datetime.date(2020, 1, 1)), "\n").startswith(b'data: {"x":0')
    assert encode_item(Colour.RED, "\n") == b"data: Colour.RED\n\n"  # not a model: str()


def test_server_sent_event_still_str_s_a_model() -> None:
    assert ServerSentEvent(Point(0, 0.0, datetime.date(2020, 1, 1))).data == (
        "Point(x=0, y=0.0, when=datetime.date(2020, 1, 1))"
    )


# --- no pydantic import ----------------------------------------------------------------------

_NO_PYDANTIC = textwrap.dedent(
    """
    import dataclasses, datetime, sys, uuid
    import trio_sse
    from trio_sse._events import encode_item

    @dataclasses.dataclass
    class P:
        when: datetime.date
        id: uuid.UUID

    value = P(datetime.date(2020, 1, 2), uuid.UUID(int=0))
    assert trio_sse.JSONServerSentEvent([value, {1, 2}]).json() == [
        {"when": "2020-01-02", "id": "00000000-0000-0000-0000-000000000000"}, [1, 2]
    ]
    assert encode_item({"data": value}, "\\n").startswith(b"data: {")
    try:
        trio_sse.JSONServerSentEvent(object())
    except TypeError:
        pass
    assert "pydantic" not in sys.modules, "pydantic was imported"
    assert "pydantic_core" not in sys.modules, "pydantic_core was imported"
    """
)


def test_import_and_use_does_not_import_pydantic() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _NO_PYDANTIC], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_rules_for_modules_loaded_late() -> None:
    # A rule's classes are looked up when needed: a module imported after trio_sse is used
    # still gets its rule.
    code = textwrap.dedent(
        """
        import sys
        import trio_sse
        assert "pydantic_core" not in sys.modules
        assert trio_sse.JSONServerSentEvent({1}).data == "[1]"
        import pydantic_core
        url = pydantic_core.Url("http://example.org/")
        assert trio_sse.JSONServerSentEvent(url).data == '"http://example.org/"'
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_the_type_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_json, "_CACHE", {})
    monkeypatch.setattr(_json, "_CACHE_SIZE", 2)
    values = [uuid.UUID(int=1), Colour.RED, datetime.date(2020, 1, 1), Point(0, 0.0, WHEN)]
    assert data_of(values) == fastapi_json(values)
    assert len(_json._CACHE) <= 2


class Name(str):
    pass


def test_the_slow_path_keeps_str_subclasses_and_converts_enums() -> None:
    value = {uuid.UUID(int=1): [Name("n"), Level.HIGH, 1.5, (True, None)]}
    assert data_of(value) == {"00000000-0000-0000-0000-000000000001": ["n", 3, 1.5, [True, None]]}


def test_json_dumps_refusing_the_converted_data_too() -> None:
    def never(obj: object) -> str:
        raise TypeError("not today")

    with pytest.raises(TypeError, match=r"^data must be JSON serialisable \(not today\), got "):
        JSONServerSentEvent(point(), json_dumps=never)
    calls: list[object] = []

    def second_refuses(obj: object) -> str:
        calls.append(obj)
        raise TypeError("first") if len(calls) == 1 else ValueError("second")

    with pytest.raises(ValueError, match=r"^data must be valid JSON \(second\), got "):
        JSONServerSentEvent(point(), json_dumps=second_refuses)


# --- through a response ----------------------------------------------------------------------


def spaced(obj: object) -> str:
    """A json_dumps whose output is told apart from the built-in's compact one."""
    return json.dumps(jsonable(obj), separators=(", ", ": "))


def point() -> Point:
    return Point(1, 2.0, datetime.date(2020, 1, 1))


COMPACT_POINT = '{"x":1,"y":2.0,"when":"2020-01-01"}'
SPACED_POINT = '{"x": 1, "y": 2.0, "when": "2020-01-01"}'


async def model_items(send: MemoryObjectSendStream[Any]) -> None:
    async with send:
        await send.send(JSONServerSentEvent(point(), event="built"))
        await send.send({"data": point(), "event": "dict", "id": "2"})
        await send.send(point())
        await send.send(JSONServerSentEvent(point(), json_dumps=json.dumps))  # its own wins
        await send.send({"data": 5})


async def read_all(app: Any) -> list[ServerSentEvent]:
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            events = [event async for event in stream]
    assert stream.complete
    return events


@pytest.mark.anyio
async def test_models_through_a_response() -> None:
    events = await read_all(sse_app(lambda: model_items))
    assert [event.data for event in events] == [
        COMPACT_POINT,
        COMPACT_POINT,
        COMPACT_POINT,
        '{"x": 1, "y": 2.0, "when": "2020-01-01"}',
        "5",
    ]
    assert [(event.event, event.id) for event in events][:2] == [("built", None), ("dict", "2")]


@pytest.mark.anyio
async def test_response_json_dumps_applies_inside_its_stream() -> None:
    events = await read_all(sse_app(lambda: model_items, json_dumps=spaced))
    assert [event.data for event in events] == [SPACED_POINT] * 4 + ["5"]
    # Outside the stream, the built-in encoder again.
    assert JSONServerSentEvent(point()).data == COMPACT_POINT


async def generated() -> AsyncIterator[object]:
    yield JSONServerSentEvent(point())
    yield {"data": point()}


def generated_in_a_thread() -> Iterator[object]:
    yield JSONServerSentEvent(point())
    yield point()


@pytest.mark.anyio
@pytest.mark.parametrize("content", [generated, generated_in_a_thread])
async def test_response_json_dumps_reaches_iterables(content: Callable[[], Any]) -> None:
    events = await read_all(sse_app(content, json_dumps=orjson_or_spaced()))
    assert [json.loads(event.data or "") for event in events] == [fastapi_json(point())] * 2
    assert all(event.data != COMPACT_POINT for event in events)


def orjson_or_spaced() -> Callable[[Any], str | bytes]:
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is in the test extra
        return spaced
    return functools.partial(orjson.dumps, option=orjson.OPT_INDENT_2)


@pytest.mark.anyio
async def test_response_json_dumps_set_after_construction() -> None:
    def make() -> EventSourceResponse:
        response = EventSourceResponse(model_items)
        assert response.json_dumps is None
        response.json_dumps = spaced
        return response

    events = await read_all(app_for(make))
    assert events[0].data == SPACED_POINT


def test_response_json_dumps_checked() -> None:
    with pytest.raises(TypeError, match=r"^json_dumps must be callable or None, got 5$"):
        EventSourceResponse(model_items, json_dumps=5)  # type: ignore[arg-type]
    response = EventSourceResponse(model_items, json_dumps=spaced)
    with pytest.raises(TypeError, match=r"^json_dumps must be callable or None, got 'x'$"):
        response.json_dumps = "x"
    assert response.json_dumps is spaced


@pytest.mark.anyio
async def test_a_model_that_cannot_be_encoded_ends_the_stream_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def producer(send: MemoryObjectSendStream[Any]) -> None:
        async with send:
            await send.send(point())
            await send.send({"data": Holder(Opaque())})
            await send.send(point())

    events = await read_all(sse_app(lambda: producer))
    assert [event.data for event in events] == [COMPACT_POINT]
    assert "could not be encoded" in caplog.text
    assert "Opaque is not JSON serializable" in caplog.text


# --- through the hub ---------------------------------------------------------------------------


def hub_app(hub: Broadcaster, **response_options: Any) -> Starlette:
    async def endpoint(request: Request) -> EventSourceResponse:
        return EventSourceResponse(hub.stream("t", request), **response_options)

    return Starlette(routes=[Route("/", endpoint)])


@pytest.mark.anyio
@pytest.mark.parametrize("hub_dumps", [None, spaced])
async def test_publish_models_through_the_hub(hub_dumps: Callable[[Any], str] | None) -> None:
    expected = COMPACT_POINT if hub_dumps is None else SPACED_POINT
    async with Broadcaster(json_dumps=hub_dumps) as hub:
        first = await hub.publish("t", "first")
        await hub.publish("t", point())
        await hub.publish("t", {"data": point(), "event": "p"})
        await hub.publish("t", JSONServerSentEvent(item()))  # built before: keeps its data
        await hub.publish("t", {"data": {"a": 1}})  # not a model: str()-ed, as before
        # The response's json_dumps does not re-encode what the hub published.
        app = hub_app(hub, json_dumps=lambda obj: "never")
        with anyio.fail_after(5):
            async with open_event_stream(app, headers={"last-event-id": first}) as stream:
                replayed = await stream.read_events(4)
                live = await hub.publish("t", {"data": point(), "id": "9"})
                (event,) = await stream.read_events(1)
    assert [event.data for event in replayed] == [
        expected,
        expected,
        JSONServerSentEvent(item()).data,
        "{'a': 1}",
    ]
    assert replayed[1].event == "p"
    assert (event.id, event.data) == (live, expected) == ("9", expected)


@pytest.mark.anyio
async def test_publish_with_orjson() -> None:
    orjson = pytest.importorskip("orjson")
    async with Broadcaster(json_dumps=orjson.dumps) as hub, hub.subscribe("t") as events:
        await hub.publish("t", item())
        with anyio.fail_after(5):
            received = await events.receive()
    assert received.json() == fastapi_json(item())


@pytest.mark.anyio
async def test_publish_refuses_an_unencodable_model_and_publishes_nothing() -> None:
    async with Broadcaster() as hub:
        with pytest.raises(TypeError, match=r"^data must be JSON serialisable .*Opaque"):
            await hub.publish("t", {"data": Holder([Opaque()])})
        assert hub.stats().published == 0


def test_broadcaster_json_dumps_checked() -> None:
    with pytest.raises(TypeError, match=r"^json_dumps must be callable or None, got 'orjson'$"):
        Broadcaster(json_dumps="orjson")  # type: ignore[arg-type]
    assert Broadcaster(json_dumps=spaced).json_dumps is spaced
