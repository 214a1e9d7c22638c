"""trio_sse benchmarks: side by side with sse-starlette and a raw ASGI floor, in one run.

``python -m benchmarks [--quick] [--scenarios encode throughput fanout idle idle10k publish
shutdown redis] [--servers uvicorn hypercorn-asyncio hypercorn-trio] [--no-node]
[--output benchmarks/results/latest.md] [--json FILE]``

* ``app_trio_sse``, ``app_sse_starlette``, ``app_raw``: the three apps, same routes
  (``_common``); each is served by its own server process (``_servers``);
* ``client``: the lean client, a separate process (raw sockets, minimal HTTP);
* ``encode``: the encoder microbenchmark;
* ``publish_latency``: ``await hub.publish()`` in one process (the ``publish`` scenario);
* ``node/``, ``_node``: the Node.js reference apps (node:http raw, better-sse);
* ``_runner``/``_report``: the interleaved rounds and the markdown report; ``_targets``: issue
  18's targets judged on the run (the report's first section).

This package imports nothing heavy: ``python -m benchmarks.client`` stays lean.
"""
