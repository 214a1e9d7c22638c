"""OpenTelemetry metrics of trio_sse's streams and broadcasters (the ``otel`` extra).

Opt-in: ``import trio_sse.metrics`` needs ``opentelemetry-api`` (``pip install
'trio_sse[otel]'``), and nothing else in trio_sse imports it. Pass an
:class:`OpenTelemetryHooks` as a response's ``hooks`` (or set it as a subclass's
``DEFAULT_HOOKS``) and every stream records:

* ``trio_sse.streams.active`` (UpDownCounter, ``{stream}``): streams open now, by ``route``;
* ``trio_sse.streams.closed`` (Counter, ``{stream}``): streams ended, by ``route`` and
  ``reason`` (a :class:`~trio_sse.CloseReason`: ``client_disconnect``, ``send_timeout``...);
* ``trio_sse.events.sent`` (Counter, ``{event}``) and ``trio_sse.bytes.sent`` (Counter,
  ``By``): what the server accepted, by ``route``;
* ``trio_sse.send.duration`` (Histogram, ``s``): how long each body message took to send
  (one message carries every event that was ready), by ``route``.

:meth:`OpenTelemetryHooks.observe` adds a :class:`~trio_sse.Broadcaster`'s counters
(:class:`~trio_sse.BroadcastStats`), read when the metrics are collected, by ``hub``:
``trio_sse.hub.published``, ``trio_sse.hub.delivered``, ``trio_sse.hub.dropped`` (events
discarded by ``drop_oldest``), ``trio_sse.hub.disconnected`` (subscribers ended by their
overflow policy), ``trio_sse.hub.revoked`` (ObservableCounters) and
``trio_sse.hub.subscribers`` (ObservableUpDownCounter).

The meter comes from *meter_provider*, else from OpenTelemetry's global one (a no-op until
the app installs an SDK): no exporter is chosen here. Nothing here is a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ._extras import require

require("opentelemetry.metrics", part="trio_sse.metrics", extras=("otel",))

from opentelemetry import metrics as otel  # noqa: E402 (after the check that names the extra)

from . import __version__  # noqa: E402
from ._hooks import StreamClosed, StreamHooks  # noqa: E402
from ._streaminfo import StreamInfo  # noqa: E402

if TYPE_CHECKING:
    from ._broadcast import Broadcaster, BroadcastStats

__all__ = ["SEND_DURATION_BUCKETS", "OpenTelemetryHooks"]

SEND_DURATION_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
"""The histogram's bucket boundaries, in seconds: a send takes microseconds unless the
client reads slowly (then up to ``send_timeout``)."""

# (instrument name, BroadcastStats field, description) of a hub's monotonic counters.
_HUB_COUNTERS = (
    ("trio_sse.hub.published", "published", "Events published through the hub"),
    ("trio_sse.hub.delivered", "delivered", "Events put into subscribers' buffers"),
    ("trio_sse.hub.dropped", "dropped", "Events discarded by the drop_oldest overflow policy"),
    ("trio_sse.hub.disconnected", "disconnected", "Subscribers ended by their overflow policy"),
    ("trio_sse.hub.revoked", "revoked", "Subscribers ended by Broadcaster.revoke"),
)


class OpenTelemetryHooks(StreamHooks):
    """Stream hooks that record OpenTelemetry metrics (see the module's docstring).

    ``OpenTelemetryHooks(meter_provider=None, *, meter_name="trio_sse")``: one per app is
    enough (its instruments are shared by every stream given it).
    """

    def __init__(
        self, meter_provider: otel.MeterProvider | None = None, *, meter_name: str = "trio_sse"
    ) -> None:
        meter = self._meter = otel.get_meter(meter_name, __version__, meter_provider=meter_provider)
        self._active = meter.create_up_down_counter(
            "trio_sse.streams.active", unit="{stream}", description="Event streams open now"
        )
        self._closed = meter.create_counter(
            "trio_sse.streams.closed", unit="{stream}", description="Event streams ended"
        )
        self._events = meter.create_counter(
            "trio_sse.events.sent", unit="{event}", description="Events the server accepted"
        )
        self._bytes = meter.create_counter(
            "trio_sse.bytes.sent", unit="By", description="Bytes of events the server accepted"
        )
        self._send_duration = meter.create_histogram(
            "trio_sse.send.duration",
            unit="s",
            description="Time to send one body message",
            explicit_bucket_boundaries_advisory=SEND_DURATION_BUCKETS,
        )
        self._hubs: dict[str, Broadcaster] = {}

    def on_open(self, info: StreamInfo) -> None:
        self._active.add(1, {"route": info.route})

    def on_close(self, info: StreamInfo, closed: StreamClosed) -> None:
        self._active.add(-1, {"route": info.route})
        self._closed.add(1, {"route": info.route, "reason": str(closed.reason)})

    def on_send(self, info: StreamInfo, events: int, nbytes: int, seconds: float) -> None:
        attributes = {"route": info.route}
        self._events.add(events, attributes)
        self._bytes.add(nbytes, attributes)
        self._send_duration.record(seconds, attributes)

    def observe(self, hub: Broadcaster, *, name: str = "default") -> None:
        """Record *hub*'s counters too, with the attribute ``hub=name`` (one name per hub).

        Its :meth:`~trio_sse.Broadcaster.stats` are read when the metrics are collected
        (never blocks). A hub given again under the same name replaces the first.
        """
        first = not self._hubs
        self._hubs[name] = hub
        if first:  # the observable instruments read every hub observed: made once
            for instrument, field, description in _HUB_COUNTERS:
                self._meter.create_observable_counter(
                    instrument, [self._reader(field)], unit="{event}", description=description
                )
            self._meter.create_observable_up_down_counter(
                "trio_sse.hub.subscribers",
                [self._reader("total_subscribers")],
                unit="{subscriber}",
                description="Subscribers of the hub in this process",
            )

    def _reader(self, field: str) -> Callable[[otel.CallbackOptions], Iterable[otel.Observation]]:
        """An instrument's callback: *field* of each observed hub's stats."""

        def read(options: otel.CallbackOptions) -> Iterable[otel.Observation]:
            return [
                otel.Observation(_stat(hub.stats(), field), {"hub": name})
                for name, hub in list(self._hubs.items())
            ]

        return read


def _stat(stats: BroadcastStats, field: str) -> int:
    value: int = getattr(stats, field)
    return value
