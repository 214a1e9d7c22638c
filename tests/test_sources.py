"""Content kinds, classified once per response (``trio_sse._sources``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from trio_sse._channels import DirectSource
from trio_sse._sources import (
    AnyioChannel,
    AsyncIterableContent,
    Content,
    DirectContent,
    ProducerFunction,
    SyncIterableContent,
    TrioChannel,
    classify,
)

pytestmark = pytest.mark.anyio


async def producer(send: MemoryObjectSendStream[Any]) -> None:
    async with send:
        pass


async def numbers() -> AsyncIterator[int]:
    yield 1


def test_each_kind_of_content_is_classified_once_into_its_class() -> None:
    send, receive = anyio.create_memory_object_stream[int](1)
    with send, receive:
        assert type(classify(receive, ())) is AnyioChannel
    direct = DirectSource(lambda: None)  # type: ignore[arg-type, return-value]
    assert type(classify(direct, ())) is DirectContent
    iterator = numbers()
    assert type(classify(iterator, ())) is AsyncIterableContent
    assert type(classify([1, 2], ())) is SyncIterableContent
    content = classify(producer, (1, 2))
    assert isinstance(content, ProducerFunction)
    assert (content.value, content.args) == (producer, (1, 2))
    assert (classify([1], ()).opens_channel, classify(direct, ()).opens_channel) == (False, True)


def test_a_trio_channel_is_its_own_kind() -> None:
    trio = pytest.importorskip("trio")
    send, receive = trio.open_memory_channel(1)
    with send, receive:
        assert type(classify(receive, ())) is TrioChannel


def test_what_is_not_content_is_refused_by_classify() -> None:
    with pytest.raises(TypeError, match="call it"):
        classify(numbers, ())
    with pytest.raises(TypeError, match="producer function only"):
        classify([1], (2,))
    with pytest.raises(TypeError, match="must be a producer function"):
        classify(42, ())


async def test_discard_releases_each_kind() -> None:
    send, receive = anyio.create_memory_object_stream[int](1)
    closed: list[str] = []

    async def agen() -> AsyncIterator[int]:
        try:
            yield 1
        finally:
            closed.append("async")

    def gen() -> Iterator[int]:
        try:
            yield 1
        finally:
            closed.append("sync")

    async_iterator, sync_iterator = agen(), gen()
    await anext(async_iterator)  # started: only aclose() runs its finally now
    next(sync_iterator)
    for content in (receive, async_iterator, sync_iterator, producer):
        await classify(content, ()).discard()
    assert closed == ["async", "sync"]
    with send, pytest.raises(anyio.BrokenResourceError):
        send.send_nowait(1)  # the receive end was closed


def test_the_base_class_has_no_stream_of_its_own() -> None:
    with pytest.raises(NotImplementedError):
        Content(None).open_channel()
