"""What a response does at its edge: chain the signals of the server that runs it, if known.

One call per response, cheap once chained (one ``signal.getsignal``): uvicorn
(:mod:`._uvicorn`), a granian worker (:mod:`._granian`) or daphne (:mod:`._daphne`), each
tried only when its package is loaded. ``trio_sse.serve`` installs its own handlers and needs
none of this; :func:`~trio_sse.set_uvicorn_chaining` turns it all off.
"""

from __future__ import annotations

from . import _uvicorn
from ._daphne import chain_daphne_signals
from ._granian import chain_granian_signals

__all__ = ["chain_server_signals_automatically"]


def chain_server_signals_automatically() -> None:
    """Chain the running server's SIGINT/SIGTERM to a run token, unless turned off."""
    if not _uvicorn._automatic:
        return
    if _uvicorn.chain_uvicorn_signals() is None and chain_granian_signals() is None:
        chain_daphne_signals()
