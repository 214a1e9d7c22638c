"""The app that tests/middleware/test_servers.py serves from real uvicorn and hypercorn.

``apps.build_app`` behind the middleware named by ``MW_KIND``, on ``MW_FRAMEWORK``
(``starlette`` by default), its streams on the process-wide shutdown token (what the server
integrations trigger). OTel spans go to an SDK provider with an in-memory exporter, listed
by ``/spans`` as ``[name, kind]`` pairs so that the test can count them from outside.
"""

from __future__ import annotations

import os

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .apps import build_app

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))


async def spans(request: Request) -> Response:
    return JSONResponse([[span.name, span.kind.name] for span in exporter.get_finished_spans()])


app = build_app(
    os.environ["MW_KIND"], os.environ.get("MW_FRAMEWORK", "starlette"), tracer_provider=provider
)
app.add_route("/spans", spans)
