"""trio_sse benchmarks: side by side with sse-starlette and a raw ASGI floor, in one run.

``python -m benchmarks [--quick] [--scenarios encode throughput fanout idle shutdown]
[--servers uvicorn hypercorn-asyncio hypercorn-trio] [--output benchmarks/results/latest.md]``

* ``app_trio_sse``, ``app_sse_starlette``, ``app_raw``: the three apps, same routes
  (``_common``); each is served by its own server process (``_servers``);
* ``client``: the lean client, a separate process (raw sockets, minimal HTTP);
* ``encode``: the encoder microbenchmark;
* ``_runner``/``_report``: the interleaved rounds and the markdown report.

This package imports nothing heavy: ``python -m benchmarks.client`` stays lean.
"""
