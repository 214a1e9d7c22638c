"""FastAPI with trio_sse (issue 14): ``yield`` path operations, OpenAPI, dependencies, servers."""
