"""The writer's coalescing policy (``trio_sse._batch.Batch``), without an event loop."""

from __future__ import annotations

from trio_sse._batch import AGAIN, BATCH_BYTES, BUSY_GAP, MAX_PASSES, PARK, PASS, Batch


def filled(chunks: list[bytes], **options: int) -> Batch:
    batch = Batch(**options)
    for chunk in chunks:
        batch.add(chunk)
    return batch


def test_take_joins_the_chunks_into_one_body_and_empties_the_batch() -> None:
    batch = filled([b"a\n\n", b"bc\n\n"])
    assert batch.size == 7
    assert batch.take() == b"a\n\nbc\n\n"
    assert (batch.chunks, batch.size) == ([], 0)


def test_a_lone_chunk_is_sent_as_itself() -> None:
    chunk = b"data: x\n\n"
    assert filled([chunk]).take() is chunk


def test_room_ends_at_the_byte_limit_or_the_item_limit() -> None:
    assert filled([b"x" * 99], max_bytes=100).has_room()
    assert not filled([b"x" * 100], max_bytes=100).has_room()
    assert filled([b"a", b"b"], max_items=3).has_room()
    assert not filled([b"a", b"b", b"c"], max_items=3).has_room()
    assert Batch().max_bytes == BATCH_BYTES


def test_a_lone_send_parks_and_a_send_soon_after_the_last_takes_a_pass() -> None:
    batch = filled([b"a"])
    batch.take()
    assert batch.sent(10.0) == PARK  # the first send: nothing to compare with
    batch.add(b"b")
    batch.take()
    assert batch.sent(10.0 + BUSY_GAP / 2) == PASS
    batch.add(b"c")
    batch.take()
    assert batch.sent(11.0) == PARK  # a slow stream goes straight back to waiting


def test_a_full_batch_means_look_again_at_once_and_busy() -> None:
    batch = filled([b"x" * 10], max_bytes=10)
    batch.take()
    before = batch.busy
    assert (before, batch.sent(5.0), batch.busy) == (False, AGAIN, True)
    assert batch.look_again(AGAIN, ended=False)
    # The next batch is not full: the byte limit is judged per batch.
    batch.add(b"x")
    batch.take()
    assert batch.sent(9.0) == PARK


def test_after_a_pass_look_again_only_if_it_found_something_or_the_end() -> None:
    batch = Batch()
    assert (batch.look_again(PASS, ended=False), batch.busy) == (False, False)
    assert (batch.look_again(PASS, ended=True), batch.busy) == (True, True)
    batch.add(b"a")
    assert batch.look_again(PASS, ended=False)
    # Parking always clears busy, even with chunks (they were looked at already).
    assert not batch.look_again(PARK, ended=False)
    assert not batch.busy


def test_gathering_is_wanted_only_while_busy_and_with_room() -> None:
    batch = Batch(max_items=2)
    assert not batch.wants_gathering()
    batch.busy = True
    assert batch.wants_gathering()
    batch.add(b"a")
    batch.add(b"b")
    assert not batch.wants_gathering()


def test_gathering_stops_after_the_quiet_passes_in_a_row() -> None:
    batch = Batch(quiet_passes=2)
    batch.start_gathering()
    batch.add(b"a")
    assert batch.gathered(0)  # the pass brought one
    assert batch.gathered(1)  # one quiet pass: under trio, not yet
    batch.add(b"b")
    assert batch.gathered(1)  # it brought one again: the quiet count restarts
    assert batch.gathered(2)
    assert not batch.gathered(2)  # two quiet passes in a row
    batch.start_gathering()
    assert not Batch(quiet_passes=1).gathered(0)  # asyncio: one quiet pass is enough


def test_gathering_stops_when_the_batch_is_full() -> None:
    batch = Batch(max_items=3)
    batch.start_gathering()
    batch.add(b"a")
    batch.add(b"b")
    assert batch.gathered(0)
    batch.add(b"c")
    assert not batch.gathered(2)


def test_gathering_stops_after_max_passes_of_a_producer_that_never_pauses() -> None:
    batch = Batch(max_bytes=10**9)
    batch.start_gathering()
    passes = 0
    while True:
        before = len(batch.chunks)
        batch.add(b"x")
        passes += 1
        if not batch.gathered(before):
            break
    assert passes == MAX_PASSES
    batch.start_gathering()  # a new run counts from zero again
    before = len(batch.chunks)
    batch.add(b"x")
    assert batch.gathered(before)
