"""Middleware in front of an ``EventSourceResponse`` (issue 14 item 5).

``apps.py`` builds the same SSE app behind each middleware kind, on Starlette or FastAPI;
``test_in_process.py`` drives it with ``trio_sse.testing``; ``test_servers.py`` serves
``served.py`` from real uvicorn and hypercorn processes.
"""
